"""Two real `hemadose run --webhook` replicas on one database (a SQLite file, or PostgreSQL) (issue 13,
item 3), each with its own webhook port, fed by posts as Telegram (through a load balancer) would spread them.

- the same update posted to both replicas at once is handled once (one reply; the later post is
  answered 503 while the earlier one's reply is being sent, and dropped when Telegram posts it again);
- two updates of one chat posted at once, one to each replica, are both handled, one after the
  other: the second sees the first's answer, and the chat's state holds both;
- a replica killed (`kill -9`) after its update committed, while sending the reply: the update
  posted again to the other replica is answered once more, with the may-repeat note, once the
  killed replica's lease expired (503 before), never lost; and when Telegram does not post it again,
  the next replica to start sends it (its start-up sweep).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.storage.updates import REPLY_LEASE
from flows.reminders import MAY_REPEAT
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


def retried(url: str, update: dict[str, Any], within: float = 15.0, every: float = 0.5) -> list[int]:
    """Post `update` as Telegram does after a 503: again every `every` seconds while answered 503; the statuses."""
    statuses = [post(url, update)]
    deadline = time.monotonic() + within
    while statuses[-1] == 503 and time.monotonic() < deadline:
        time.sleep(every)
        statuses.append(post(url, update))
    return statuses


def last_message(api: LoopbackBotApi, user: int) -> dict[str, Any]:
    return next(c.result for c in reversed(api.accepted("sendMessage")) if c.params["chat_id"] == user)


def test_replicas_handle_an_update_posted_to_both_once(api: LoopbackBotApi, replicas: tuple[WebhookBot, WebhookBot]):
    first, second = replicas
    for user in USERS:
        update = said("/start", user)
        statuses = at_once((first.url, update), (second.url, update))
        # The later one waits for the earlier one's commit; while that one is still sending its reply
        # (its lease runs), the later answers 503 and Telegram posts the update again: then it is dropped.
        assert sorted(statuses) in ([200, 200], [200, 503]), statuses
        for status, replica in zip(statuses, (first, second), strict=True):
            if status == 503:
                assert retried(replica.url, update)[-1] == 200
    for user in USERS:
        assert api.texts(user) == [WELCOME]
    # and again, later: a redelivery to either replica is dropped too (to the other one, answered 503
    # until the first has written its mark, within MARK_SENT_WITHIN: Telegram posts it again)
    update = said("/new", USERS[0])
    assert post(first.url, update) == 200
    assert post(first.url, update) == 200
    assert retried(second.url, update)[-1] == 200
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


def test_replica_killed_after_its_commit_while_sending_its_replies_loses_none(
    api: LoopbackBotApi, db_url_for_replicas: str, tmp_path: Path
):
    """Replica A handles an update (its transaction commits) and hangs sending the reply (the Bot API
    holds the call); A is killed (`kill -9`). Telegram, never answered, posts the update again, to B:
    while A's lease runs B answers 503 and sends nothing (A might still be sending); once it expired,
    B sends the reply once more with the may-repeat note. The user gets it exactly once more, never
    zero times, and B carries on with the chat."""
    url = db_url_for_replicas
    allowed = {"HEMADOSE_ALLOWED_USERS": str(USERS[0])}
    first = WebhookBot(api, url, tmp_path, **allowed).serving()
    second = WebhookBot(api, url, tmp_path, **allowed).serving()
    user, update = USERS[0], said("/start", USERS[0])
    try:
        api.fail("sendMessage", "timeout", seconds=60)  # A's send is held: A hangs after its commit
        posted = threading.Thread(target=post, args=(first.url, update), daemon=True)
        posted.start()
        deadline = time.monotonic() + 20
        while not any(call.method == "sendMessage" for call, _ in api.refused):  # A is sending: it committed
            assert time.monotonic() < deadline, "".join(first.log)
            time.sleep(0.02)
        first.process.kill()  # kill -9
        first.process.wait(timeout=10)
        killed_at = time.monotonic()
        posted.join(timeout=30)
        assert rows(url, f"SELECT count(*) FROM processed_updates WHERE update_id = {update['update_id']}") == [(1,)]
        # Telegram posts it again, to B, at once: A's lease runs, so B leaves it to Telegram's next try.
        assert post(second.url, update) == 503
        assert api.texts(user) == []
        # Telegram's retries, a second apart, until B takes the replies.
        statuses = retried(second.url, update, within=REPLY_LEASE.total_seconds() + 15, every=1.0)
        assert statuses[-1] == 200, statuses
        assert time.monotonic() - killed_at >= REPLY_LEASE.total_seconds() - 1  # not before the lease expired
        assert api.texts(user) == [f"{MAY_REPEAT}\n{WELCOME}"]
        # Posted again (or swept): sent already, dropped.
        assert post(second.url, update) == 200
        assert api.texts(user) == [f"{MAY_REPEAT}\n{WELCOME}"]
        deadline = time.monotonic() + 10
        while rows(url, "SELECT count(*) FROM processed_updates WHERE replies IS NOT NULL") != [(0,)]:
            assert time.monotonic() < deadline, "B never marked the replies sent"  # within MARK_SENT_WITHIN
            time.sleep(0.1)
        # B carries on with the chat.
        assert post(second.url, said("/new", user)) == 200
        assert api.texts(user) == [f"{MAY_REPEAT}\n{WELCOME}", "Which drug?"]
    finally:
        if first.process.poll() is None:
            first.process.kill()
        assert second.stop() == 0
    assert "Traceback" not in "".join(second.log)


def test_replica_killed_mid_send_its_reply_is_swept_by_the_next_replica_to_start(
    api: LoopbackBotApi, db_url_for_replicas: str, tmp_path: Path
):
    """As above, but Telegram does not post the update again (it had given up, or the replica was on
    long polling): the sweep of the next replica to start (its first reminders' tick) sends the reply,
    once its lease expired, with the may-repeat note; a late post of the update is then dropped."""
    url = db_url_for_replicas
    allowed = {"HEMADOSE_ALLOWED_USERS": str(USERS[0])}
    first = WebhookBot(api, url, tmp_path, **allowed).serving()
    user, update = USERS[0], said("/start", USERS[0])
    second: WebhookBot | None = None
    try:
        api.fail("sendMessage", "timeout", seconds=60)
        threading.Thread(target=post, args=(first.url, update), daemon=True).start()
        deadline = time.monotonic() + 20
        while not any(call.method == "sendMessage" for call, _ in api.refused):
            assert time.monotonic() < deadline, "".join(first.log)
            time.sleep(0.02)
        first.process.kill()
        first.process.wait(timeout=10)
        time.sleep(REPLY_LEASE.total_seconds())  # the killed replica's lease runs out
        second = WebhookBot(api, url, tmp_path, **allowed).serving()
        [call] = api.wait_for("sendMessage", 1, timeout=20)
        assert (call.params["chat_id"], call.params["text"]) == (user, f"{MAY_REPEAT}\n{WELCOME}")
        # A late post: dropped once the sweep's send is marked (503 in the moment between the Bot API
        # taking the message and the replica hearing so; Telegram posts again).
        assert retried(second.url, update)[-1] == 200
        assert api.texts(user) == [f"{MAY_REPEAT}\n{WELCOME}"]
    finally:
        if first.process.poll() is None:
            first.process.kill()
        if second is not None:
            assert second.stop() == 0
    assert second is not None
    assert "Traceback" not in "".join(second.log)
