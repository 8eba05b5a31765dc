"""Storage: migrations, per-user isolation, what a saved consultation records, the audit."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import func, select, text

from bot.storage import Storage, audit_chain, open_storage
from bot.storage.files import write_private
from bot.storage.inloop import durable_write
from bot.storage.schema import HEAD_REVISION
from bot.storage.tables import Audit, Regimen
from core import recommend
from core.models import DoseRequest
from flows.replies import AuditRecommendation, SaveConsultation
from tests.helpers import hemoglobin, luspatercept, platelets, romiplostim

TODAY = dt.date(2026, 11, 22)
HEMADOSE = Path(sys.executable).parent / "hemadose"


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    opened = await open_storage(f"sqlite:///{tmp_path}/test.db")
    yield opened
    await opened.close()


def consultation(label: str, request: dict) -> SaveConsultation:  # type: ignore[type-arg]
    parsed = DoseRequest.model_validate(request)
    return SaveConsultation(label, parsed, recommend(parsed))


@pytest.mark.parametrize("driver", ["sqlite", "sqlite+aiosqlite"])
async def test_migrations_are_applied_once_and_reopening_keeps_data(tmp_path: Path, driver: str):
    url = f"{driver}:///{tmp_path}/again.db"
    first = await open_storage(url)
    async with first.session() as session, session.begin():
        await first.user_id(session, "tg:1")
    await first.close()
    second = await open_storage(url)
    async with second.session() as session:
        version = await session.scalar(text("select version_num from alembic_version"))
        assert version == HEAD_REVISION
        assert await second.user_id(session, "tg:1") == 1
    await second.close()


async def test_a_user_sees_only_their_own_patients(storage: Storage):
    async with storage.session() as session, session.begin():
        alice = await storage.user_id(session, "tg:1001")
        bob = await storage.user_id(session, "tg:1002")
        await storage.save_consultation(session, alice, consultation("RX-12", romiplostim()))
    async with storage.session() as session:
        assert await storage.patient_labels(session, alice) == [("RX-12", "romiplostim")]
        assert await storage.patient_labels(session, bob) == []
        assert await storage.summaries(session, bob, TODAY) == {}
        assert await storage.summaries(session, bob, TODAY, labels=["RX-12"]) == {}
        assert await storage.history(session, bob, "RX-12") is None
        assert await storage.load_chat(session, "tg:1:1001", bob) is None


async def test_the_same_label_for_two_users_is_two_patients(storage: Storage):
    async with storage.session() as session, session.begin():
        alice = await storage.user_id(session, "tg:1001")
        bob = await storage.user_id(session, "tg:1002")
        await storage.save_consultation(session, alice, consultation("P1", romiplostim()))
        await storage.save_consultation(session, bob, consultation("P1", romiplostim(patient={"weight_kg": 50})))
    async with storage.session() as session:
        assert (await storage.summaries(session, alice, TODAY))["P1"].weight_kg == "72"
        assert (await storage.summaries(session, bob, TODAY))["P1"].weight_kg == "50"


async def test_an_increase_is_recorded_as_the_new_dose_from_its_date(storage: Storage):
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        await storage.save_consultation(session, user, consultation("RX-12", romiplostim()))
    async with storage.session() as session:
        summary = (await storage.summaries(session, user, TODAY))["RX-12"]
    assert (summary.drug, summary.dose_amount, summary.dose_since, summary.on_hold) == (
        "romiplostim",
        "4",
        dt.date(2026, 11, 22),
        False,
    )
    assert summary.last_given == dt.date(2026, 11, 15)
    assert summary.weight_kg == "72"
    assert [(lab.value, lab.date) for lab in summary.labs] == [("32", dt.date(2026, 11, 21))]


async def test_a_hold_keeps_the_dose_and_marks_the_hold(storage: Storage):
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        await storage.save_consultation(
            session, user, consultation("RX-1", romiplostim(labs=[platelets(420, "2026-11-21")]))
        )
    async with storage.session() as session:
        summary = (await storage.summaries(session, user, TODAY))["RX-1"]
    assert (summary.dose_amount, summary.dose_since, summary.on_hold) == ("3", dt.date(2026, 11, 1), True)


async def test_a_discontinuation_ends_the_regimen_but_keeps_the_history(storage: Storage):
    stop = luspatercept("mds", adverse_reaction={"grade": 3, "hypersensitivity": True})
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        await storage.save_consultation(session, user, consultation("L-1", stop))
    async with storage.session() as session:
        assert await session.scalar(select(func.count()).select_from(Regimen)) == 0
        found = await storage.history(session, user, "l-1")  # found whatever the case, as in the chat
        assert found is not None
        label, history = found
        assert label == "L-1"
        assert (dt.date(2026, 11, 21), "hemoglobin 8.9 g/dL") in history
        assert (dt.date(2026, 11, 8), "transfusion 1 units") in history


async def test_saving_twice_does_not_duplicate_results_or_doses(storage: Storage):
    effect = consultation("RX-12", romiplostim(labs=[platelets(32, "2026-11-21"), hemoglobin(9.4, "2026-11-21")]))
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        await storage.save_consultation(session, user, effect)
        await storage.save_consultation(session, user, effect)
    async with storage.session() as session:
        history = await storage.history(session, user, "RX-12")
    assert history == (
        "RX-12",
        [
            (dt.date(2026, 11, 21), "hemoglobin 9.4 g/dL"),  # same date: the later recorded first
            (dt.date(2026, 11, 21), "platelets 32 10^9/L"),
            (dt.date(2026, 11, 15), "dose given: romiplostim 3 mcg/kg"),
        ],
    )


async def test_every_recommendation_is_audited_append_only(storage: Storage):
    """Later saves and audits change no earlier entry, and an edited or deleted entry breaks the chain."""
    first = consultation("RX-12", romiplostim())
    later = consultation("RX-30", luspatercept())
    audit = Audit.__table__

    async def all_rows() -> list[tuple[object, ...]]:
        async with storage.session() as session:
            return [tuple(row) for row in await session.execute(select(audit).order_by(audit.c.id))]

    async def verdict() -> audit_chain.Verdict:
        async with storage.session() as session:
            return await audit_chain.verify(session)

    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        await storage.save_consultation(session, user, first)
        for _ in range(3):
            await storage.audit(session, user, AuditRecommendation("RX-12", first.request, first.response))
    before = await all_rows()
    async with storage.session() as session, session.begin():
        await storage.save_consultation(session, user, first)  # the record updated
        await storage.save_consultation(session, user, later)
        for _ in range(2):
            await storage.audit(session, user, AuditRecommendation("RX-30", later.request, later.response))
    after = await all_rows()
    assert len(before) == 3
    assert after[:3] == before  # every column of every earlier entry unchanged
    rows = await _audits(storage)
    assert [row.ruleset for row in rows] == ["romiplostim/us"] * 3 + ["luspatercept/us"] * 2
    assert cast(dict[str, object], rows[0].request["current_dose"])["amount"] == 3
    assert rows[0].response["action"] == "increase"
    assert await verdict() == audit_chain.Verdict(5, rows[-1].hash)

    async with storage.session() as session, session.begin():
        await session.execute(
            text("update audit set response = json_set(response, '$.action', 'decrease') where id = 2")
        )
    assert (await verdict()).problem == "audit entry id 2 (#2): its content does not match its hash (edited)"
    async with storage.session() as session, session.begin():
        await session.execute(
            text("update audit set response = json_set(response, '$.action', 'increase') where id = 2")
        )
    assert (await verdict()).intact
    async with storage.session() as session, session.begin():
        await session.execute(text("delete from audit where id = 4"))
    assert (await verdict()).problem == "audit entry #4 missing (deleted): the next entry is id 5 (#5)"


async def _audits(storage: Storage) -> list[Audit]:
    async with storage.session() as session:
        return list(await session.scalars(select(Audit).order_by(Audit.id)))


async def test_the_embedded_sqlite_runs_in_the_event_loop_and_commits_to_disk(tmp_path: Path):
    """No driver thread, a committed write visible to another process's reader, a failed one undone."""
    import sqlite3
    import threading

    storage = await open_storage(f"sqlite:///{tmp_path}/inloop.db")
    # (Opening wrote the schema, a durable commit: its disk flush may have started asyncio's worker
    # thread. Statements and chat-state commits must add none.)
    before = threading.active_count()
    async with storage.session() as session, session.begin():
        await storage.user_id(session, "tg:7")

    async def failing_update() -> None:
        async with storage.session() as session, session.begin():
            await storage.user_id(session, "tg:8")
            raise RuntimeError("the update failed")

    with pytest.raises(RuntimeError):
        await failing_update()
    assert threading.active_count() == before
    reader = sqlite3.connect(tmp_path / "inloop.db")
    assert reader.execute("select external_id from users").fetchall() == [("tg:7",)]
    reader.close()
    await storage.close()


# --- private files -------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_database_and_its_wal_and_shm_are_created_private(tmp_path: Path):
    """Under the usual umask 022 (which would give 0644) the files are 0600 as soon as they exist."""
    previous = os.umask(0o022)
    try:
        folder = tmp_path / "new"
        opened = await open_storage(f"sqlite:///{folder}/hemadose.db")
        async with opened.session() as session, session.begin():
            await opened.user_id(session, "tg:1")
        files = {name: mode(folder / name) for name in ("hemadose.db", "hemadose.db-wal", "hemadose.db-shm")}
        await opened.close()
    finally:
        os.umask(previous)
    assert files == {"hemadose.db": 0o600, "hemadose.db-wal": 0o600, "hemadose.db-shm": 0o600}
    assert mode(folder) == 0o700


def test_chat_creates_the_database_and_the_record_private(tmp_path: Path):
    record = tmp_path / "session.yaml"
    done = subprocess.run(
        [str(HEMADOSE), "chat", "--db", str(tmp_path / "chat.db"), "--record", str(record), "--today", "2026-11-22"],
        input="/start\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        umask=0o022,
    )
    assert done.returncode == 0, done.stderr
    assert (mode(tmp_path / "chat.db"), mode(record)) == (0o600, 0o600)


def test_an_existing_record_file_is_made_private_before_it_is_written(tmp_path: Path):
    record = tmp_path / "old.yaml"
    record.write_text("an older, world-readable dialogue")
    record.chmod(0o644)
    write_private(record, "steps: []\n")
    assert (mode(record), record.read_text()) == (0o600, "steps: []\n")


# --- durability ------------------------------------------------------------------------------------


class Flushes:
    """os.fdatasync as the storage calls it: which file, and how many audit rows another reader saw then."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, database: Path) -> None:
        self.files: list[str] = []
        self.audit_seen: list[int] = []
        self._database = database
        real = os.fdatasync

        def recorded(descriptor: int) -> None:
            inode = os.fstat(descriptor).st_ino
            names = [p.name for p in database.parent.iterdir() if p.stat().st_ino == inode]
            self.files.extend(names)
            reader = sqlite3.connect(database)
            self.audit_seen.append(reader.execute("select count(*) from audit").fetchone()[0])
            reader.close()
            real(descriptor)

        monkeypatch.setattr(os, "fdatasync", recorded)


async def test_a_recommendation_commit_reaches_the_disk_and_chat_state_commits_do_not_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    database = tmp_path / "durable.db"
    opened = await open_storage(f"sqlite:///{database}")
    flushes = Flushes(monkeypatch, database)
    effect = consultation("RX-12", romiplostim())
    async with opened.session() as session, session.begin():  # chat state only: synchronous=NORMAL, no flush
        chat = await opened.open_chat(session, "tg:1", "tg:1:1")
        await opened.save_chat(session, chat, "tg:1:1", "{}")
    assert flushes.files == []
    async with opened.session() as session, session.begin():  # the confirmed recommendation
        await opened.save_chat(session, chat._replace(state="{}"), "tg:1:1", '{"state": "patient"}')
        await opened.save_consultation(session, chat.user_id, effect)
        await opened.audit(session, chat.user_id, AuditRecommendation("RX-12", effect.request, effect.response))
        sync_level = (await session.execute(text("PRAGMA synchronous"))).scalar()
    # Flushed once, the WAL file, after the commit (another reader already saw the entry).
    assert (flushes.files, flushes.audit_seen) == (["durable.db-wal"], [1])
    assert sync_level == 1  # NORMAL on the connection: the flush is the commit's own
    await opened.close()


async def test_a_delivery_claim_reaches_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from bot.reminders import _SET_STATE

    database = tmp_path / "claim.db"
    opened = await open_storage(f"sqlite:///{database}")
    flushes = Flushes(monkeypatch, database)
    async with opened.engine.begin() as connection:  # as Reminders._mark writes 'sending' before a send
        await connection.execute(_SET_STATE, {"the_key": "1:dose", "state": "sending"})
    assert flushes.files == ["claim.db-wal"]
    await opened.close()


@pytest.mark.parametrize(
    ("statement", "durable"),
    [
        ("INSERT INTO audit (user_id) VALUES (?)", True),
        ("UPDATE audit_head SET seq=(audit_head.seq + ?) WHERE audit_head.id = ? RETURNING seq, hash", True),
        ("UPDATE deliveries SET state=? WHERE deliveries.key = ?", True),
        ("DELETE FROM regimens WHERE regimens.patient_id = ?", True),
        ("INSERT INTO labs (patient_id) VALUES (?)", True),
        ("UPDATE occurrences SET state=?", True),
        ("INSERT INTO conversations (chat_key) VALUES (?)", False),
        ("INSERT OR IGNORE INTO conversations (chat_key) VALUES (?)", False),
        ("UPDATE users SET time_zone=?", False),
        ("SELECT audit.id FROM audit", False),
        ("PRAGMA synchronous", False),
    ],
)
def test_which_writes_are_flushed_at_commit(statement: str, durable: bool):
    assert durable_write(statement) is durable


async def test_aiosqlite_urls_run_synchronous_full(tmp_path: Path):
    opened = await open_storage(f"sqlite+aiosqlite:///{tmp_path}/full.db")
    async with opened.session() as session:
        assert (await session.execute(text("PRAGMA synchronous"))).scalar() == 2
    await opened.close()


async def test_the_disk_flush_leaves_the_event_loop_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A slow disk holds the committing update only: other work on the loop goes on meanwhile."""
    import asyncio
    import time

    import bot.storage.inloop

    opened = await open_storage(f"sqlite:///{tmp_path}/slow.db")
    monkeypatch.setattr(bot.storage.inloop, "sync_file", lambda _path: time.sleep(0.3))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    running = asyncio.create_task(ticker())
    effect = consultation("RX-12", romiplostim())
    started = time.perf_counter()
    async with opened.session() as session, session.begin():
        user = await opened.user_id(session, "tg:1")
        await opened.audit(session, user, AuditRecommendation("RX-12", effect.request, effect.response))
    waited = time.perf_counter() - started
    running.cancel()
    await opened.close()
    assert waited >= 0.3  # the commit returned only once flushed
    assert ticks >= 10  # ... and the loop ran the ticker all the while
