"""An update handled once (webhook mode): `ChatService.handle(update_id=...)` and the pruning of the ids.

The cross-process half (two replicas, one database) is tests/test_replicas.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from bot.service import ChatService
from bot.storage import Storage, open_storage
from bot.storage.tables import ProcessedUpdate
from bot.storage.updates import KEEP_HANDLED, claim_update, prune_updates


@pytest.fixture
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    """SQLite, or PostgreSQL when the suite runs on it (tests/conftest.py's db_url, HEMADOSE_TEST_DB_URL)."""
    try:
        url: str = request.getfixturevalue("db_url")
    except pytest.FixtureLookupError:
        url = f"sqlite:///{tmp_path}/once.db"
    opened = await open_storage(url)
    yield opened
    await opened.close()


async def handled(storage: Storage) -> list[int]:
    async with storage.session() as session:
        return list(await session.scalars(select(ProcessedUpdate.update_id).order_by(ProcessedUpdate.update_id)))


async def test_an_update_handled_twice_is_answered_once_and_moves_the_chat_once(storage: Storage):
    service = ChatService(storage)
    assert [r.text for r in await service.handle("tg:7", "tg:7:7", text="/new", update_id=41)] == ["Which drug?"]
    assert await service.handle("tg:7", "tg:7:7", text="/new", update_id=41) == []
    assert await service.handle("tg:7", "tg:7:7", button="v:romiplostim", update_id=41) == []  # same id: dropped
    replies = await service.handle("tg:7", "tg:7:7", button="v:romiplostim", update_id=42)
    assert [r.text for r in replies] == ["Which label's rules?"]
    assert await handled(storage) == [41, 42]


async def test_a_refused_update_is_recorded_too(storage: Storage):
    service = ChatService(storage)
    [refusal, *_] = await service.handle("tg:7", "tg:7:7", text="x" * 5000, update_id=9)
    assert refusal.text == (
        "That message is 5,000 characters long; an answer here is never more than 1,000. Nothing from it was "
        "entered. Send a shorter answer:"
    )
    assert await service.handle("tg:7", "tg:7:7", text="x" * 5000, update_id=9) == []


async def test_without_an_update_id_nothing_is_recorded(storage: Storage):
    """Long polling and the terminal chat: getUpdates' offset (or the terminal) gives each update once."""
    service = ChatService(storage)
    for _ in range(2):
        assert [r.text for r in await service.handle("tg:7", "tg:7:7", text="/new")] == ["Which drug?"]
    assert await handled(storage) == []


async def test_handled_ids_are_kept_a_day_then_pruned(storage: Storage):
    now = dt.datetime(2026, 12, 2, 9, 0)
    async with storage.session() as session, session.begin():
        assert await claim_update(session, "tg:1:1", 1)
        assert await claim_update(session, "tg:1:1", 2)
        assert not await claim_update(session, "tg:1:1", 1)
        await session.execute(
            update(ProcessedUpdate)
            .where(ProcessedUpdate.update_id == 1)
            .values(handled_at=now - KEEP_HANDLED - dt.timedelta(seconds=1))
        )
        await session.execute(
            update(ProcessedUpdate)
            .where(ProcessedUpdate.update_id == 2)
            .values(handled_at=now - KEEP_HANDLED + dt.timedelta(seconds=1))
        )
    async with storage.session() as session, session.begin():
        assert await prune_updates(session, now) == 1
    async with storage.session() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 1
    assert await handled(storage) == [2]
