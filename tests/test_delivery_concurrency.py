"""Concurrent reminder delivery (issue 12) and claims shared by replicas (issue 13).

A fake Bot whose send_message takes a simulated round trip stands for Telegram behind the real
`TelegramSender` (its limiters on). Due reminders are written straight into the tables (one lab
reminder per patient, one message each), as tests/benchmarks/bench_reminders.py does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import Table, func, insert, select, update

from bot.reminders import Reminders
from bot.reminders.base import DeliveryState, Purpose
from bot.reminders.outbox import LEASE
from bot.sending import TelegramSender
from bot.storage import Storage, open_storage
from bot.storage.tables import Delivery, Occurrence, PatientRow, Reminder, User
from flows.reminders import MAY_REPEAT
from tests.databases import ON_POSTGRES

NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
LOOP = Path(__file__).parent / "reminder_loop.py"


async def seed(storage: Storage, chats: dict[int, int]) -> int:
    """For each chat id, that many patients with a lab reminder due at NOW (one message each)."""
    naive = NOW.replace(tzinfo=None)
    number = 0
    async with storage.engine.begin() as connection:
        for chat, count in chats.items():
            await connection.execute(
                insert(User).values(id=chat, external_id=f"tg:{chat}", time_zone="UTC", created_at=naive)
            )
            for _ in range(count):
                number += 1
                await connection.execute(
                    insert(PatientRow).values(id=number, user_id=chat, label=f"P{number}", created_at=naive)
                )
                await connection.execute(
                    insert(Reminder).values(
                        id=number,
                        user_id=chat,
                        patient_id=number,
                        chat_key=f"tg:{chat}:{chat}",
                        drug="hetrombopag",
                        dose_amount="5",
                        dose_unit="mg",
                        dose_text="5 mg",
                        lab_text="platelet count",
                        local_time="09:00",
                        status="active",
                        created_at=naive,
                    )
                )
                await connection.execute(
                    insert(Occurrence).values(
                        reminder_id=number,
                        kind="lab",
                        on_date=naive.date(),
                        due_at=naive,
                        state="scheduled",
                        sends=0,
                        next_at=naive,
                    )
                )
    return number


@dataclass
class SlowBot:
    """Telegram with a round trip: each send_message takes `delay` seconds and is then accepted."""

    delay: float = 0.15
    started: list[tuple[float, int, str]] = field(default_factory=list)
    accepted: list[tuple[float, int, str]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    async def send_message(self, chat_id: int, text: str, reply_markup: Any = None) -> Any:
        self.started.append((time.monotonic(), chat_id, text))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        self.accepted.append((time.monotonic(), chat_id, text))
        return SimpleNamespace(message_id=len(self.accepted))


async def states(storage: Storage) -> dict[str, int]:
    async with storage.session() as session:
        rows = await session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
        return {row[0]: row[1] for row in rows}


def patient(text: str) -> str:
    """'Blood test reminder · patient P7 ...' -> 'P7' (the note, if any, left out)."""
    first = text.removeprefix(MAY_REPEAT + "\n").splitlines()[0]
    return first.rsplit(" ", 1)[1]


@pytest.fixture
async def storage(db_url: str) -> Any:
    opened = await open_storage(db_url)
    yield opened
    await opened.close()


async def test_60_chats_at_a_150_ms_round_trip_are_sent_concurrently(storage: Storage):
    assert await seed(storage, dict.fromkeys(range(1, 61), 1)) == 60
    bot = SlowBot(0.15)
    reminders = Reminders(storage, lambda: NOW, "UTC", sender=TelegramSender(bot, limits=True))  # type: ignore[arg-type]
    start = time.monotonic()
    assert await reminders.run_due() == 60
    elapsed = time.monotonic() - start
    # Sent one after another this would take 60 x 150 ms = 9 s, one in flight; the bot's pace (26/s, one
    # message at a time: bot.sending.BotPace) with a 150 ms round trip keeps about 4 in flight.
    assert bot.most_in_flight >= 3
    # The outbox counts a send from the moment it is handed to the sender, the wait for the bot's pace
    # included (it holds a send slot meanwhile); at Telegram itself fewer are in flight.
    assert reminders.most_in_flight >= bot.most_in_flight
    assert sorted(chat for _, chat, _ in bot.accepted) == list(range(1, 61))  # each chat once
    assert await states(storage) == {"sent": 60}
    print(f"60 chats, 150 ms round trip: {elapsed:.2f} s, at most {bot.most_in_flight} in flight")


async def test_ten_due_in_one_chat_do_not_hold_up_the_other_chats(storage: Storage):
    # Chat 1 has 10 patients due at once; chats 2..31 one each. Limits on, with a tenth of a second
    # as the limiters' window (Telegram's is 1 s: the same shape, ten times faster).
    await seed(storage, {1: 10} | dict.fromkeys(range(2, 32), 1))
    bot = SlowBot(0.15)
    sender = TelegramSender(bot, limits=True, period=0.1)  # type: ignore[arg-type]
    reminders = Reminders(storage, lambda: NOW, "UTC", sender=sender)
    assert await reminders.run_due() == 40
    busy = [(at, text) for at, chat, text in bot.started if chat == 1]
    others = [at for at, chat, _ in bot.accepted if chat != 1]
    assert [patient(text) for _, text in busy] == [f"P{n}" for n in range(1, 11)]  # in order
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(busy)]
    assert min(gaps) >= 0.09  # the chat's own limit held: one per window
    assert len(others) == 30
    assert max(others) < busy[-1][0]  # every other chat was served before the busy chat's 10th
    assert await states(storage) == {"sent": 40}


@dataclass
class WatchingBot(SlowBot):
    """A SlowBot that, at each send, counts the deliveries in `states` whose message it has not been handed
    yet: 'sending' ones a crash would re-send with the may-repeat note although they never left; 'queued'
    and 'sending' ones this replica holds, which another replica's tick cannot take."""

    storage: Storage | None = None
    states: tuple[str, ...] = (DeliveryState.SENDING,)
    counts: list[int] = field(default_factory=list)

    async def send_message(self, chat_id: int, text: str, reply_markup: Any = None) -> Any:
        assert self.storage is not None
        async with self.storage.session() as session:
            found = set(await session.scalars(select(Delivery.text).where(Delivery.state.in_(self.states))))
        self.counts.append(len(found - {sent for _, _, sent in self.started}))
        return await super().send_message(chat_id, text, reply_markup)


async def test_only_messages_holding_a_send_slot_are_marked_sending(storage: Storage):
    # 40 chats with 2 due each, 4 send slots: most chats wait (for a slot, or for their own second) while
    # four are sent. A row marked 'sending' is re-sent with the note after a crash: only the four in a slot
    # may be marked (marking every chat's next message put the note on up to 32 that never left).
    await seed(storage, dict.fromkeys(range(1, 41), 2))
    bot = WatchingBot(0.02, storage=storage)
    sender = TelegramSender(bot, limits=True, period=0.1)  # type: ignore[arg-type]
    reminders = Reminders(storage, lambda: NOW, "UTC", sender=sender, concurrency=4)
    assert await reminders.run_due() == 80
    assert 1 <= max(bot.counts) <= 4
    assert await states(storage) == {"sent": 80}


async def test_at_telegrams_pace_a_replica_holds_a_few_seconds_of_sends_and_leaves_the_rest_due(storage: Storage):
    # 200 due: claimed all at once, a replica sent them alone at its share of the limit while another
    # replica's tick found nothing; now it holds at most twice its send slots, the rest stays due.
    await seed(storage, dict.fromkeys(range(1, 201), 1))
    bot = WatchingBot(0.0, storage=storage, states=(DeliveryState.QUEUED, DeliveryState.SENDING))
    sender = TelegramSender(bot, limits=True, period=0.02)  # type: ignore[arg-type]
    reminders = Reminders(storage, lambda: NOW, "UTC", sender=sender, concurrency=8)
    assert await reminders.run_due() == 200
    assert max(bot.counts) <= 16
    assert await states(storage) == {"sent": 200}


@dataclass
class Recorder:
    """A sender for one replica: records (replica, chat, text) and takes a little time per send."""

    name: str
    log: list[tuple[str, str, str]]
    delay: float = 0.005
    crash_after: int | None = None

    async def __call__(self, chat_key: str, text: str, buttons: Any, /) -> int:
        if self.crash_after is not None and sum(name == self.name for name, *_ in self.log) >= self.crash_after:
            raise Crash
        self.log.append((self.name, chat_key, text))
        await asyncio.sleep(self.delay)
        return len(self.log)


class Crash(BaseException):
    """The process dies here (nothing in the bot may catch it)."""


async def test_two_replicas_on_one_database_send_each_due_reminder_once(db_url: str):
    """Two outboxes in one process, each with its own engine (connection) on one database, run
    concurrently on 200 due reminders; a second OS process is in the next test."""
    url = db_url
    first, second = await open_storage(url), await open_storage(url)
    try:
        assert await seed(first, dict.fromkeys(range(1, 51), 4)) == 200
        log: list[tuple[str, str, str]] = []
        a = Reminders(first, lambda: NOW, "UTC", sender=Recorder("a", log), batch=20, concurrency=8)
        b = Reminders(second, lambda: NOW, "UTC", sender=Recorder("b", log), batch=20, concurrency=8)
        assert a.owner != b.owner
        sent = await asyncio.gather(a.run_due(), b.run_due())
        assert sum(sent) == 200
        by_message = Counter((chat, text) for _, chat, text in log)
        assert len(by_message) == 200
        assert set(by_message.values()) == {1}
        assert {name for name, *_ in log} == {"a", "b"}  # both took part
        assert not any(text.startswith(MAY_REPEAT) for *_, text in log)
        assert await states(first) == {"sent": 200}
        async with first.session() as session:
            owners = Counter(await session.scalars(select(Delivery.owner)))
        assert set(owners) == {a.owner, b.owner}
    finally:
        await first.close()
        await second.close()


def test_two_replica_processes_on_one_database_send_each_due_reminder_once(tmp_path: Path, db_url: str):
    db, sends, go = db_url, tmp_path / "sends.jsonl", tmp_path / "go"

    async def prepared() -> None:
        opened = await open_storage(db)
        await seed(opened, dict.fromkeys(range(1, 51), 4))
        await opened.close()

    asyncio.run(prepared())
    command = [sys.executable, str(LOOP), str(db), NOW.isoformat(), str(sends), "--until-idle"]
    command += ["--batch", "10", "--pause", "0.1", "--go", str(go)]
    loops = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for loop in loops:
        assert loop.stdout is not None
        assert loop.stdout.readline() == b"ready\n"
    go.touch()  # both start at once
    for loop in loops:
        _, errors = loop.communicate(timeout=60)
        assert loop.returncode == 0, errors.decode()
    sent = [json.loads(line) for line in sends.read_text().splitlines()]
    by_message = Counter((line["chat"], line["text"]) for line in sent)
    assert len(by_message) == 200
    assert set(by_message.values()) == {1}
    assert len({line["pid"] for line in sent}) == 2  # both processes sent
    assert not any(line["text"].startswith(MAY_REPEAT) for line in sent)


async def test_a_dead_replicas_rows_wait_for_its_lease_then_go_out_once_the_sending_ones_noted(db_url: str):
    url = db_url
    first, second = await open_storage(url), await open_storage(url)
    try:
        await seed(first, dict.fromkeys(range(1, 11), 3))
        log: list[tuple[str, str, str]] = []
        dead = Reminders(first, lambda: NOW, "UTC", sender=Recorder("dead", log, crash_after=4), concurrency=4)
        with pytest.raises(Crash):
            await dead.run_due()
        assert len(log) == 4
        async with first.session() as session:
            left = {
                key: (state, owner)
                for key, state, owner in await session.execute(select(Delivery.key, Delivery.state, Delivery.owner))
            }
        in_flight = {key for key, (state, _) in left.items() if state == DeliveryState.SENDING}
        queued = {key for key, (state, _) in left.items() if state == DeliveryState.QUEUED}
        assert {owner for _, owner in left.values()} == {dead.owner}
        assert len(in_flight) >= 4
        assert queued
        assert all(key.endswith(f":{Purpose.REMINDER}") for key in left)
        assert len(left) == 30

        # Another replica, while the lease runs: none of the dead one's rows is taken.
        clock = NOW + LEASE - dt.timedelta(seconds=1)
        survivor = Reminders(second, lambda: clock, "UTC", sender=Recorder("survivor", log))
        assert await survivor.run_due() == 0
        assert [name for name, *_ in log] == ["dead"] * 4

        # Once it has expired: every row goes out once more, noted exactly when it was 'sending'.
        clock = NOW + LEASE + dt.timedelta(seconds=1)
        assert await survivor.run_due() == len(in_flight) + len(queued)
        resent = [(chat, text) for name, chat, text in log if name == "survivor"]
        noted = {patient(text) for _, text in resent if text.startswith(MAY_REPEAT)}
        plain = {patient(text) for _, text in resent if not text.startswith(MAY_REPEAT)}

        async def labels(keys: set[str]) -> set[str]:
            ids = [int(key.split(":")[0]) for key in keys]
            async with first.session() as session:
                found = await session.scalars(
                    select(PatientRow.label)
                    .join(Reminder, Reminder.patient_id == PatientRow.id)
                    .join(Occurrence, Occurrence.reminder_id == Reminder.id)
                    .where(Occurrence.id.in_(ids))
                )
                return set(found)

        assert noted == await labels(in_flight)
        assert plain == await labels(queued)
        # What the dead one sent and had not yet confirmed goes again, always noted. (Its confirmations ride
        # with the next 'sending' marks, written as each message takes a send slot: often none is left.)
        repeated = {patient(text) for name, _, text in log if name == "dead"} & (noted | plain)
        assert repeated <= noted
        assert await states(second) == {"sent": 30}
        async with second.session() as session:  # what the dead one left is the survivor's now
            found = await session.execute(select(Delivery.key, Delivery.owner))
            owners = {row.key: row.owner for row in found}
        assert {owners[key] for key in in_flight | queued} == {survivor.owner}
    finally:
        await first.close()
        await second.close()


async def test_rows_taken_over_after_a_lease_expired_are_not_sent_by_their_first_owner(db_url: str):
    """A replica stalled past its lease (its first send hangs): another takes the rows it still
    held and sends them; the first one, resuming, sends none of them (each message once)."""
    url = db_url
    first, second = await open_storage(url), await open_storage(url)
    try:
        await seed(first, {1: 5})  # one chat: the stalled replica marks one message at a time
        log: list[tuple[str, str, str]] = []
        later = NOW + LEASE + dt.timedelta(seconds=1)
        other = Reminders(second, lambda: later, "UTC", sender=Recorder("other", log))

        async def stalls(chat_key: str, text: str, buttons: Any, /) -> int:
            log.append(("stalled", chat_key, text))
            if len(log) == 1:  # its lease runs out meanwhile: the other replica takes what it held
                assert await other.run_due() == 5
            return len(log)

        stalled = Reminders(first, lambda: NOW, "UTC", sender=stalls)
        assert await stalled.run_due() == 1  # the one it had handed over; the other four are not its own now
        assert [name for name, *_ in log] == ["stalled"] + ["other"] * 5
        taken = [text for name, _, text in log if name == "other"]
        # The message in flight when the lease ran out goes again, noted; the rest once, plainly.
        assert [patient(text) for text in taken] == [f"P{n}" for n in range(1, 6)]
        assert [text.startswith(MAY_REPEAT) for text in taken] == [True, False, False, False, False]
        assert await states(first) == {"sent": 5}
    finally:
        await first.close()
        await second.close()


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's row locks (SQLite's writers take turns)")
async def test_a_lease_renewal_never_deadlocks_with_another_replica_writing_the_same_rows(db_url: str):
    """Found on PostgreSQL: a replica renewing its leases (one UPDATE over all its rows) while another,
    which took some of them over, confirmed them in another order: 'deadlock detected'. Now the
    renewal locks in key order and skips a row another replica is writing."""
    first, second = await open_storage(db_url), await open_storage(db_url)
    try:
        await seed(first, dict.fromkeys(range(1, 6), 1))
        holder = Reminders(first, lambda: NOW, "UTC", sender=None)
        await holder.run_due()  # the five messages written 'queued', owned by the holder
        async with first.session() as session:
            keys = sorted(await session.scalars(select(Delivery.key)))
        assert len(keys) == 5
        table = cast(Table, Delivery.__table__)
        async with second.engine.begin() as other:  # committed on leaving
            await other.execute(update(table).where(table.c.key == keys[-1]).values(attempts=1))
            later = NOW + dt.timedelta(seconds=10)
            holder.lease_clock = lambda: later
            renewal = asyncio.create_task(holder._renew())
            await asyncio.sleep(0.3)  # the renewal runs into the row the other replica holds
            await other.execute(update(table).where(table.c.key == keys[0]).values(attempts=1))
        await renewal
        async with first.session() as session:
            leases = await session.execute(select(Delivery.key, Delivery.lease_until))
            renewed = {key for key, until in leases if until == (later + LEASE).replace(tzinfo=None)}
        assert renewed == set(keys[:-1])  # the row the other replica was writing is left to it
    finally:
        await first.close()
        await second.close()
