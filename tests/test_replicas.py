"""Two real `hemadose run --webhook` replicas on one SQLite database file (issue 13, item 3), each with
its own webhook port, fed by posts as Telegram (through a load balancer) would spread them.

- the same update posted to both replicas at once is handled once (one reply);
- two updates of one chat posted at once, one to each replica, are both handled, one after the
  other: the second sees the first's answer, and the chat's state holds both.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.loopback_bot_api import LoopbackBotApi
from tests.test_loopback_e2e import WELCOME
from tests.webhook_bot import WebhookBot, post, pressed, said

USERS = [1001, 1002, 1003, 1004, 1005, 1006]
AGE = "Age in years? Children's weight is reassessed every 12 weeks."
WEIGHT_DATE = "When was that weight measured?"


@pytest.fixture
def api() -> Iterator[LoopbackBotApi]:
    with LoopbackBotApi(limits=False) as server:
        yield server


@pytest.fixture
def db_url_for_replicas(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: PostgreSQL when the suite runs on it (HEMADOSE_TEST_DB_URL, tests/conftest.py's
    new_db_url), else a SQLite file both replicas open."""
    try:
        new: Callable[[str], str] = request.getfixturevalue("new_db_url")
    except pytest.FixtureLookupError:
        return f"sqlite:///{tmp_path / 'bot.db'}"
    return new("bot")


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    """Rows of `query`, read by the test itself (SQLite or PostgreSQL)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def read() -> list[tuple[Any, ...]]:
        engine = create_async_engine(url.replace("sqlite:///", "sqlite+aiosqlite:///", 1))
        try:
            async with engine.connect() as connection:
                return [tuple(row) for row in await connection.execute(text(query))]
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.fixture
def replicas(api: LoopbackBotApi, db_url_for_replicas: str, tmp_path: Path) -> Iterator[tuple[WebhookBot, WebhookBot]]:
    url = db_url_for_replicas
    allowed = {"HEMADOSE_ALLOWED_USERS": ",".join(map(str, USERS))}
    first = WebhookBot(api, url, tmp_path, **allowed).serving()  # creates the schema first
    second = WebhookBot(api, url, tmp_path, **allowed).serving()
    yield first, second
    assert second.stop() == 0
    assert first.stop() == 0
    for replica in (first, second):
        assert "Traceback" not in "".join(replica.log)


def at_once(*posts: tuple[str, dict[str, Any]]) -> list[int]:
    """Post (webhook URL, update) pairs from threads released together; their HTTP statuses, in order."""
    start = threading.Barrier(len(posts))
    status = [0] * len(posts)

    def run(index: int, url: str, update: dict[str, Any]) -> None:
        start.wait()
        status[index] = post(url, update)

    threads = [threading.Thread(target=run, args=(i, *pair)) for i, pair in enumerate(posts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return status


def last_message(api: LoopbackBotApi, user: int) -> dict[str, Any]:
    return next(c.result for c in reversed(api.accepted("sendMessage")) if c.params["chat_id"] == user)


def test_replicas_handle_an_update_posted_to_both_once(api: LoopbackBotApi, replicas: tuple[WebhookBot, WebhookBot]):
    first, second = replicas
    for user in USERS:
        update = said("/start", user)
        assert at_once((first.url, update), (second.url, update)) == [200, 200]
    for user in USERS:
        assert api.texts(user) == [WELCOME]
    # and again, later: a redelivery to either replica is dropped too
    update = said("/new", USERS[0])
    assert post(first.url, update) == 200
    assert post(second.url, update) == 200
    assert api.texts(USERS[0]) == [WELCOME, "Which drug?"]


def test_replicas_handle_one_chats_concurrent_updates_one_after_the_other(
    api: LoopbackBotApi, replicas: tuple[WebhookBot, WebhookBot], db_url_for_replicas: str
):
    first, second = replicas
    for i, user in enumerate(USERS):
        bot = (first, second)[i % 2]
        for step in ("/new",):
            assert post(bot.url, said(step, user)) == 200
        for label in ("Romiplostim", "US label"):
            assert post(bot.url, pressed(last_message(api, user), label, user)) == 200
        assert post(bot.url, said(f"LB-{i}", user)) == 200
        assert api.texts(user)[-1] == "Body weight in kg?"
    for user in USERS:
        # The weight and, at once on the other replica, the age: whichever is handled second answers
        # the question the first one moved the chat to.
        weight, age = said("72", user), said("40", user)
        assert at_once((first.url, weight), (second.url, age)) == [200, 200]
        assert sorted(api.texts(user)[-2:]) == sorted([AGE, WEIGHT_DATE])
        assert len(api.texts(user)) == 6
    url = db_url_for_replicas
    states = [json.loads(state) for (state,) in rows(url, "SELECT state FROM conversations ORDER BY chat_key")]
    assert len(states) == len(USERS)
    assert rows(url, "SELECT count(*) FROM processed_updates") == [(len(USERS) * 6,)]
    for state in states:
        assert state["state"] == "weight_date", state
        answers = {state["answers"]["weight_kg"], state["answers"]["age_years"]}
        assert answers == {"72", "40"}, state  # both answers kept, one in each field
