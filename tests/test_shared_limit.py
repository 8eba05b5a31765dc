"""One Telegram limit across replicas (issue 13): Telegram's 30 messages a second are the bot's, so
replicas share them through their heartbeats (bot/storage/replicas.py, bot/sending.py's BotPace).

- the heartbeats: a replica alone paces at 26/s, two at 12.5/s each (at most 27 in any second
  together, each letting one message through at the start of a second; a tenth left for jitter), a
  joining replica holds its sends until the others have counted it, one that leaves or dies gives its
  share back;
- two real `hemadose run --webhook` replicas answering 80 users at once through the loopback Bot API
  with Telegram's limits on: no message refused (the loopback answers 429 beyond 30 a second; two
  replicas with a limiter of their own each would have asked for 40 within a second).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.sending import BotPace, BotRateLimiter, SharedLimit
from bot.storage import Storage, open_storage
from bot.storage.replicas import HEARTBEAT, LIVE_FOR, beat
from tests.benchmarks.bench_scale_out import peak_per_second
from tests.loopback_bot_api import LoopbackBotApi
from tests.test_loopback_e2e import WELCOME
from tests.test_replicas import db_url_for_replicas, rows  # noqa: F401 (the fixture)
from tests.webhook_bot import WebhookBot, post, said


async def test_replicas_share_the_bots_limit_by_their_heartbeats(new_db_url: Callable[[str], str]):
    storage = await open_storage(new_db_url("limit"))
    try:
        first, second = SharedLimit(storage, "first", [BotPace()]), SharedLimit(storage, "second", [BotPace()])
        one, two = first.paces[0], second.paces[0]
        assert one.ready_at > time.monotonic()  # nothing sent before the first heartbeat
        assert await first.beat() == 1
        assert (one.replicas, one.rate(1), one.time_period) == (1, 26, 1 / 26)
        assert one.ready_at <= time.monotonic()  # alone: sends at once
        joined = time.monotonic()
        assert await second.beat() == 2
        assert two.ready_at >= joined + HEARTBEAT.total_seconds()  # until `first` has counted it
        assert (two.replicas, two.time_period) == (2, 1 / 12.5)
        assert await first.beat() == 2
        assert (one.replicas, one.time_period) == (2, 1 / 12.5)  # 2 x (12.5 + 1) = 27 in any second at most
        await second.leave()
        assert await first.beat() == 1
        assert one.time_period == 1 / 26
        async with storage.session() as session, session.begin():  # a replica killed: no goodbye
            late = dt.datetime.now(dt.UTC).replace(tzinfo=None) - LIVE_FOR - dt.timedelta(seconds=1)
            assert await beat(session, "killed", now=late) == 2  # its last heartbeat, long ago
        assert await first.beat() == 1  # it no longer counts (and its row is gone)
        assert await storage_names(storage) == ["first"]
    finally:
        await storage.close()


async def storage_names(storage: Storage) -> list[str]:
    from sqlalchemy import select

    from bot.storage.tables import ReplicaRow

    async with storage.session() as session:
        return list(await session.scalars(select(ReplicaRow.name).order_by(ReplicaRow.name)))


USERS = list(range(2001, 2081))


@pytest.fixture
def limited_api() -> Iterator[LoopbackBotApi]:
    with LoopbackBotApi(limits=True) as server:
        yield server


def test_two_replicas_answering_at_once_keep_to_one_limit(
    limited_api: LoopbackBotApi, request: pytest.FixtureRequest, tmp_path: Path
):
    url: str = request.getfixturevalue("db_url_for_replicas")
    allowed = {"HEMADOSE_ALLOWED_USERS": ",".join(map(str, USERS))}
    first = WebhookBot(limited_api, url, tmp_path, **allowed).serving()  # creates the schema first
    second = WebhookBot(limited_api, url, tmp_path, **allowed).serving()
    try:
        for replica in (first, second):  # each has counted the other (its log says so when the count changes)
            deadline = time.monotonic() + 4 * HEARTBEAT.total_seconds()
            while "2 replica(s) share" not in "".join(replica.log):
                assert time.monotonic() < deadline, "".join(replica.log)
                time.sleep(0.1)
        assert sorted(name.split(":")[1] for (name,) in rows(url, "SELECT name FROM replicas")) == sorted(
            [str(first.process.pid), str(second.process.pid)]
        )
        start = threading.Barrier(len(USERS))
        status = [0] * len(USERS)

        def user(index: int) -> None:
            start.wait()
            status[index] = post((first, second)[index % 2].url, said("/start", USERS[index]))

        threads = [threading.Thread(target=user, args=(i,)) for i in range(len(USERS))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert status == [200] * len(USERS)
        assert [limited_api.texts(u) for u in USERS] == [[WELCOME]] * len(USERS)
        assert [(call.method, code) for call, code in limited_api.refused] == []  # no 429: not over 30/s
        assert peak_per_second([call.time for call in limited_api.accepted("sendMessage")]) <= 30
        assert first.stop() == 0
        assert [name.split(":")[1] for (name,) in rows(url, "SELECT name FROM replicas")] == [str(second.process.pid)]
    finally:
        for replica in (first, second):
            replica.stop()
            assert "Traceback" not in "".join(replica.log)


async def test_the_end_of_a_429_pause_releases_no_burst():
    """python-telegram-bot's AIORateLimiter granted overall slots during a 429's pause and sent them all at
    its end; BotRateLimiter takes a slot only outside a pause, so the sends after it keep the pace."""
    pace = BotPace(period=0.1)  # the window shortened: 26 per 0.1 s, one every 3.8 ms
    limiter = BotRateLimiter(pace)
    sent: list[float] = []
    loop = asyncio.get_running_loop()

    async def send() -> bool:
        sent.append(loop.time())
        return True

    limiter._retry_after_event.clear()  # a 429 asked to wait (what process_request does)
    waiting = [asyncio.create_task(limiter._run_request(True, False, False, send, (), {})) for _ in range(10)]
    await asyncio.sleep(0.05)
    assert sent == []  # nothing during the pause
    limiter._retry_after_event.set()
    assert await asyncio.gather(*waiting) == [True] * 10
    assert sent[-1] - sent[0] >= 9 * (0.1 / 26) * 0.9  # paced after it (a burst took no time at all)
