"""Delivery through the real python-telegram-bot Application and its offline Bot API: restarts (clean,
and abrupt between a send and its confirmation) and a Bot API that fails 20% of the time."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select
from telegram.error import TimedOut

from bot.offline import RecordingRequest, SentMessage
from bot.replay import Harness
from bot.sending import TelegramSender
from bot.storage.tables import Delivery
from flows.reminders import MAY_REPEAT
from tests.helpers import dose, hetrombopag, platelets, romiplostim, save_with_reminders

UTC = dt.UTC
TODAY = dt.date(2026, 11, 22)


def at(hour: int, minute: int = 0, day: int = 22) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def daily(label_day: str = "2026-11-22") -> dict[str, Any]:
    return hetrombopag(
        as_of=label_day, current_dose=dose(5, "mg", "2026-11-01", "2026-11-21"), labs=[platelets(80, "2026-11-21")]
    )


async def schedule_many(harness: Harness, users: int, per_user: int) -> int:
    """users x per_user patients, each with a daily hetrombopag dose at 08:00 and a romiplostim one at 09:00."""
    count = 0
    for user in range(1, users + 1):
        for number in range(per_user):
            await save_with_reminders(harness.service, user, f"H{number}", daily(), "08:00", "UTC")
            await save_with_reminders(harness.service, user, f"R{number}", romiplostim(), "09:00", "UTC")
            count += 2
    return count


async def started(url: str, now: dt.datetime, **options: Any) -> Harness:
    harness = Harness(url, TODAY, None, **options)
    harness.now = now
    await harness.start()
    return harness


async def delivery_states(harness: Harness) -> dict[str, int]:
    assert harness.storage is not None
    async with harness.storage.session() as session:
        rows = await session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
        return {row[0]: row[1] for row in rows}


async def rows_in(harness: Harness, state: str) -> set[tuple[int, str]]:
    """(chat id, text) of the deliveries in `state`."""
    assert harness.storage is not None
    async with harness.storage.session() as session:
        rows = await session.execute(select(Delivery.chat_key, Delivery.text).where(Delivery.state == state))
        return {(int(chat_key.split(":")[1]), text) for chat_key, text in rows}


class Crash(BaseException):
    """The process dies here (not an Exception: nothing in the bot may catch it)."""


def body(message: SentMessage) -> tuple[int, str]:
    return message.chat_id, message.text.removeprefix(MAY_REPEAT + "\n")


@dataclass
class DiesAfter(RecordingRequest):
    """The offline Bot API; the process dies right after Telegram accepted the `after`-th message
    (nothing more is written: the confirmations waiting to be written are lost with it)."""

    after: int = 3
    dead: bool = False  # the other sends under way die with it (none reaches Telegram after the crash)

    async def do_request(self, url: str, method: str, request_data: Any = None, *args: Any, **kw: Any) -> Any:
        if self.dead:
            raise Crash
        answer = await super().do_request(url, method, request_data, *args, **kw)
        if url.endswith("/sendMessage") and len(self.sent) == self.after:
            self.dead = True
            raise Crash
        return answer


async def test_a_restart_loses_nothing_and_repeats_only_with_the_note(db_url: str):
    url = db_url
    # The first Application schedules 12 reminders and sends those due at 08:00; it stops cleanly.
    first = await started(url, at(6))
    scheduled = await schedule_many(first, users=3, per_user=2)
    assert scheduled == 12
    first.now = at(8)
    await first.service.reminders.run_due()
    phase_one = first.request.take()
    await first.stop()
    # Each chat's messages in order (chats are served concurrently).
    assert sorted((m.chat_id, m.text.splitlines()[0]) for m in phase_one) == [
        (user, f"Dose reminder · patient H{number}") for user in (1, 2, 3) for number in (0, 1)
    ]

    # The second one runs at 09:00 and dies right after Telegram accepted its 3rd message.
    second = await started(url, at(9), request_factory=DiesAfter)
    with pytest.raises(Crash):
        await second.service.reminders.run_due()
    phase_two = second.request.take()
    await second.stop()
    assert len(phase_two) == 3
    left = await delivery_states(second)
    assert left["sent"] >= 6  # the 08:00 ones, and those of this run confirmed before it died
    in_flight = await rows_in(second, "sending")  # handed over (or about to be): may have reached the user
    accepted = {body(m) for m in phase_two}
    unconfirmed = accepted & in_flight
    assert body(phase_two[-1]) in unconfirmed  # the one Telegram took as the process died

    # The third one, a minute later (the dead one's lease, 30 s, has expired), sends what was left:
    # every row left 'sending' with the may-repeat note, the others plainly.
    third = await started(url, at(9, 1))
    await third.service.reminders.run_due()
    phase_three = third.request.take()
    assert {body(m) for m in phase_three if m.text.startswith(MAY_REPEAT)} == in_flight
    everything = phase_one + phase_two + phase_three
    repeated = {key for key, times in Counter(body(m) for m in everything).items() if times > 1}
    assert repeated == unconfirmed  # only what was accepted and not yet confirmed, and always noted
    romiplostim_doses = {body(m) for m in everything if body(m)[1].startswith("Dose reminder · patient R")}
    assert len(romiplostim_doses) == 6  # every 09:00 reminder, for every user
    assert await delivery_states(third) == {"sent": 12}
    # Nothing more is due until the re-sends at 11:00 and 12:00: none is sent twice.
    third.now = at(10, 59)
    await third.service.reminders.run_due()
    assert third.request.take() == []
    await third.stop()


@dataclass
class FaultyRequest(RecordingRequest):
    """The offline Bot API, failing a fifth of sendMessage calls: RetryAfter, time-outs, server errors.

    A failed call is not recorded: Telegram did not accept that message."""

    rate: float = 0.2
    rng: random.Random = field(default_factory=lambda: random.Random(20261122))
    faults: Counter[str] = field(default_factory=Counter)

    async def do_request(self, url: str, method: str, request_data: Any = None, *args: Any, **kw: Any) -> Any:
        if url.endswith("/sendMessage") and self.rng.random() < self.rate:
            fault = self.rng.choice(["retry_after", "timeout", "server_error"])
            self.faults[fault] += 1
            if fault == "timeout":
                raise TimedOut("offline fault")
            if fault == "retry_after":
                answer = {"ok": False, "error_code": 429, "description": "Too Many Requests", "parameters": {}}
                answer["parameters"] = {"retry_after": 3}
                return 429, json.dumps(answer).encode()
            return 502, json.dumps({"ok": False, "error_code": 502, "description": "Bad Gateway"}).encode()
        return await super().do_request(url, method, request_data, *args, **kw)


async def test_every_due_reminder_is_delivered_once_through_a_failing_bot_api(db_url: str):
    harness = await started(db_url, at(6), request_factory=FaultyRequest)
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    harness.service.reminders.sender = TelegramSender(harness.application.bot, limits=False, sleep=no_sleep)
    scheduled = await schedule_many(harness, users=10, per_user=5)
    harness.now = at(9)
    for minute in range(0, 60, 2):  # a running bot: later runs retry what failed
        harness.now = at(9, minute)
        await harness.service.reminders.run_due()
    request = harness.request
    assert isinstance(request, FaultyRequest)
    sent = request.take()
    assert len(sent) == scheduled == 100
    assert len({body(m) for m in sent}) == 100  # none twice
    assert sorted(request.faults) == ["retry_after", "server_error", "timeout"]
    assert sum(request.faults.values()) >= 15  # about a fifth of the calls failed
    # A time-out is the one fault after which Telegram may have the message: its retry says so.
    assert sum(m.text.startswith(MAY_REPEAT) for m in sent) >= 1
    assert 3.0 in waits  # RetryAfter waited as long as asked
    assert await delivery_states(harness) == {"sent": 100}
    await harness.stop()
