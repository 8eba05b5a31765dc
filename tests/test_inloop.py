"""SQLite in the event loop: no greenlet bridge, transactions in turn, clinical commits on the disk."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc, select, text

import bot.storage.inloop
from bot.replay import load, replay
from bot.storage import Storage, open_storage
from bot.storage.inloop import InLoopEngine, InLoopSession
from bot.storage.tables import User
from core import recommend
from core.models import DoseRequest
from flows.replies import AuditRecommendation, SaveConsultation
from tests.helpers import romiplostim

DIALOGUES = Path(__file__).parent / "dialogues"


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    opened = await open_storage(f"sqlite:///{tmp_path}/inloop.db")
    yield opened
    await opened.close()


def _no_bridge(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """SQLAlchemy's greenlet bridge, wherever a module bound it, made to record and fail."""
    entered: list[str] = []

    def refuse(name: str) -> Any:
        def bridge(*_args: Any, **_kwargs: Any) -> Any:
            entered.append(name)
            raise AssertionError(f"SQLAlchemy's greenlet bridge entered ({name})")

        return bridge

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("sqlalchemy"):
            for name in ("greenlet_spawn", "await_only", "await_fallback"):
                if hasattr(module, name):
                    monkeypatch.setattr(module, name, refuse(name))
    return entered


def _consultation(label: str) -> SaveConsultation:
    request = DoseRequest.model_validate(romiplostim())
    return SaveConsultation(label, request, recommend(request))


async def test_sqlite_sessions_are_the_in_loop_executor(storage: Storage):
    assert isinstance(storage.engine, InLoopEngine)
    async with storage.session() as session:
        assert isinstance(session, InLoopSession)
        assert session.get_bind().dialect.name == "sqlite"


@pytest.mark.parametrize(
    "name",
    ["reminders_setup_answers_and_reset", "flow_followup_romiplostim_increase_saved", "access_settings_timezone"],
)
async def test_a_dialogue_on_sqlite_never_enters_the_greenlet_bridge(name: str, monkeypatch: pytest.MonkeyPatch):
    """Consultations saved, the audit chained, reminders set, answered and delivered: all without it."""
    import sqlalchemy.ext.asyncio  # noqa: F401  # loaded, so that its bound names are patched too

    entered = _no_bridge(monkeypatch)
    result = await replay(load(DIALOGUES / f"{name}.yaml"))
    assert result.passed, "\n".join(m.report() for m in result.mismatches)
    assert entered == []


async def test_the_bridge_patch_bites_on_the_async_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The check above can fail: the aiosqlite engine (the bridge) trips it on its first statement."""
    opened = await open_storage(f"sqlite+aiosqlite:///{tmp_path}/bridge.db")
    entered = _no_bridge(monkeypatch)
    with pytest.raises(AssertionError, match="greenlet bridge"):
        async with opened.session() as session:
            await session.scalar(select(User.id))
    monkeypatch.undo()
    await opened.close()
    assert entered


@pytest.mark.skipif(
    not os.environ.get("HEMADOSE_TEST_POSTGRES_URL"),
    reason="set HEMADOSE_TEST_POSTGRES_URL (e.g. postgresql+asyncpg://user@/db?host=/socket/dir) to run on PostgreSQL",
)
async def test_postgresql_keeps_the_async_engine():
    """The same storage functions, run through AsyncSession and the greenlet bridge."""
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    opened = await open_storage(os.environ["HEMADOSE_TEST_POSTGRES_URL"])
    assert isinstance(opened.engine, AsyncEngine)
    effect = _consultation("PG-1")
    async with opened.session() as session, session.begin():
        assert isinstance(session, AsyncSession)
        user = await opened.user_id(session, "tg:inloop-pg")
        await opened.save_consultation(session, user, effect)
        await opened.audit(session, user, AuditRecommendation("PG-1", effect.request, effect.response))
    async with opened.session() as session:
        found = await opened.history(session, user, "PG-1")
    await opened.close()
    assert found is not None
    assert found[0] == "PG-1"


async def test_two_concurrent_transactions_take_turns(storage: Storage):
    """The second waits (asynchronously: the loop runs on) until the first has committed, then sees its write."""
    order: list[str] = []
    first_wrote, finish_first = asyncio.Event(), asyncio.Event()
    ticks = 0

    async def first() -> None:
        async with storage.session() as session, session.begin():
            await storage.user_id(session, "tg:1")
            order.append("first wrote")
            first_wrote.set()
            await finish_first.wait()  # mid-transaction, the connection still this one's
            order.append("first commits")
        order.append("first committed")

    async def second() -> None:
        await first_wrote.wait()
        order.append("second starts")
        async with storage.session() as session, session.begin():
            order.append("second has its turn")
            users = list(await session.scalars(select(User.external_id).order_by(User.id)))
            order.append(f"second sees {users}")
            await storage.user_id(session, "tg:2")

    async def ticker() -> None:
        nonlocal ticks
        await first_wrote.wait()
        for _ in range(5):
            await asyncio.sleep(0)
            ticks += 1
        finish_first.set()

    await asyncio.gather(first(), second(), ticker())
    assert ticks == 5  # the waiting transaction held nothing up
    assert order == [
        "first wrote",
        "second starts",
        "first commits",
        "first committed",
        "second has its turn",
        "second sees ['tg:1']",
    ]
    async with storage.session() as session:
        assert list(await session.scalars(select(User.external_id).order_by(User.id))) == ["tg:1", "tg:2"]


async def test_a_failed_or_abandoned_transaction_gives_up_its_turn(storage: Storage):
    async def failing() -> None:
        async with storage.session() as session, session.begin():
            await storage.user_id(session, "tg:1")
            raise RuntimeError("the update failed")

    with pytest.raises(RuntimeError):
        await failing()
    async with storage.session() as session:  # reads, then closed without a commit
        assert await session.scalar(select(User.id)) is None
    session = storage.session()
    await session.execute(text("select 1"))
    await session.rollback()
    async with asyncio.timeout(1), storage.session() as session, session.begin():
        await storage.user_id(session, "tg:2")
    await session.close()


async def test_a_transaction_waiting_behind_one_that_never_ends_times_out(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
):
    """As the pool's timeout did: a nested session in one task fails instead of hanging the update."""
    monkeypatch.setattr(bot.storage.inloop, "WAIT_FOR_CONNECTION", 0.05)
    async with storage.session() as outer, outer.begin():
        await storage.user_id(outer, "tg:1")
        with pytest.raises(exc.TimeoutError):
            async with storage.session() as inner:
                await inner.scalar(select(User.id))


class Syncs:
    """InLoopEngine.flush (the fdatasync of the WAL) as the commits call it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = InLoopEngine.flush

        def counted(engine: InLoopEngine) -> None:
            self.calls += 1
            real(engine)

        monkeypatch.setattr(InLoopEngine, "flush", counted)


async def test_only_commits_that_wrote_clinical_tables_are_flushed(storage: Storage, monkeypatch: pytest.MonkeyPatch):
    syncs = Syncs(monkeypatch)
    effect = _consultation("RX-1")
    session = storage.session()  # commit() called directly, not through begin()
    chat = await storage.open_chat(session, "tg:1", "tg:1:1")
    await storage.save_chat(session, chat, "tg:1:1", "{}")
    await session.commit()
    assert syncs.calls == 0  # users and conversations only: synchronous=NORMAL
    await storage.save_consultation(session, chat.user_id, effect)
    await storage.audit(session, chat.user_id, AuditRecommendation("RX-1", effect.request, effect.response))
    await session.commit()
    assert syncs.calls == 1
    await storage.save_consultation(session, chat.user_id, _consultation("RX-2"))
    await session.rollback()  # a clinical write undone: nothing to flush, then or at the next commit
    await storage.save_chat(session, chat._replace(state="{}"), "tg:1:1", '{"state": "patient"}')
    await session.commit()
    await session.close()
    assert syncs.calls == 1
    async with storage.engine.begin() as connection:  # engine.begin(): the same rule
        await connection.execute(text("UPDATE users SET time_zone = 'UTC'"))
    assert syncs.calls == 1
    async with storage.engine.begin() as connection:
        await connection.execute(text("UPDATE patients SET weight_kg = '70'"))
    assert syncs.calls == 2


async def test_the_turn_is_held_until_the_flush_is_done(storage: Storage, monkeypatch: pytest.MonkeyPatch):
    """A reader cannot act on a clinical commit (send a reminder, say) before it is on the disk."""
    flushing, flushed = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_flush(_engine: InLoopEngine) -> None:
        loop.call_soon_threadsafe(flushing.set)
        import time

        time.sleep(0.1)
        loop.call_soon_threadsafe(flushed.set)

    monkeypatch.setattr(InLoopEngine, "flush", slow_flush)

    async def write() -> None:
        async with storage.session() as session, session.begin():
            user = await storage.user_id(session, "tg:1")
            effect = _consultation("RX-1")
            await storage.audit(session, user, AuditRecommendation("RX-1", effect.request, effect.response))

    async def read() -> bool:
        await flushing.wait()
        async with storage.session() as session:
            await session.scalar(select(User.id))
            return flushed.is_set()

    _, read_after_flush = await asyncio.gather(write(), read())
    assert read_after_flush


def test_a_chat_on_sqlite_does_not_import_the_asyncio_bridge(tmp_path: Path):
    """Neither SQLAlchemy's asyncio extension nor greenlet is loaded (start-up time: issue 12)."""
    import subprocess

    program = f"""
import asyncio, sys
from bot.service import ChatService
from bot.storage import open_storage
import bot.telegram_app, bot.terminal

async def main():
    storage = await open_storage("sqlite:///{tmp_path}/chat.db")
    await ChatService(storage).handle("tg:1", "tg:1:1", text="/new")
    await storage.close()

asyncio.run(main())
print(sorted(m for m in sys.modules if m.startswith(("sqlalchemy.ext.asyncio", "greenlet"))))
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
