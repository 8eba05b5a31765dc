"""Reminders on a controlled clock (time-machine): local times in two zones and across DST, Taken,
Skip and Snooze, every drug's missed dose, the one re-send, late sends after downtime, isolation."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select

from bot.reminders import Buttons
from bot.service import ChatService
from bot.storage import Storage, open_storage
from bot.storage.tables import Dose, Occurrence
from flows.reminders import MAY_REPEAT
from tests.helpers import (
    dose,
    hemoglobin,
    hetrombopag,
    luspatercept,
    lusutrombopag,
    platelets,
    romiplostim,
    save_with_reminders,
)

UTC = dt.UTC
EMPTY_STOMACH = (
    "take on an empty stomach, with no food for 2 hours after; dairy products and mineral supplements "
    "at least 2 hours after the dose."
)


@dataclass
class Sent:
    at: dt.datetime
    chat_key: str
    text: str
    buttons: Buttons

    @property
    def first_line(self) -> str:
        return self.text.splitlines()[0]

    def data(self, label: str) -> str:
        return next(data for row in self.buttons for shown, data in row if shown == label)


@dataclass
class Outbox:
    """A sender that accepts everything and keeps it, stamped with the (travelled) time."""

    sent: list[Sent] = field(default_factory=list)

    async def __call__(self, chat_key: str, text: str, buttons: Buttons) -> int:
        self.sent.append(Sent(dt.datetime.now(UTC), chat_key, text, buttons))
        return len(self.sent)

    def take(self) -> list[Sent]:
        taken, self.sent = self.sent, []
        return taken


@dataclass
class World:
    storage: Storage
    service: ChatService
    outbox: Outbox
    traveller: Any

    async def setup(self, user: int, label: str, request: dict[str, Any], at: str, zone: str) -> dict[str, Any]:
        return await save_with_reminders(self.service, user, label, request, at, zone)

    async def run_until(self, until: dt.datetime) -> list[Sent]:
        """A running bot until `until`: the clock jumps to each moment something is due."""
        reminders = self.service.reminders
        while True:
            due = await reminders.next_wakeup()
            if due is None or due.replace(tzinfo=UTC) > until:
                break
            self.traveller.move_to(max(due.replace(tzinfo=UTC), dt.datetime.now(UTC)))
            await reminders.run_due()
        self.traveller.move_to(until)
        await reminders.run_due()
        return self.outbox.take()

    async def press(self, user: int, message: Sent, label: str) -> str:
        replies = await self.service.handle(f"tg:{user}", f"tg:{user}:{user}", button=message.data(label))
        return "\n".join(reply.text for reply in replies)

    async def doses(self) -> list[tuple[dt.date, str]]:
        async with self.storage.session() as session:
            rows = await session.execute(select(Dose.given_on, Dose.status).order_by(Dose.given_on, Dose.id))
            return [(row[0], row[1]) for row in rows]

    async def scheduled(self) -> list[tuple[str, dt.date, dt.datetime]]:
        async with self.storage.session() as session:
            rows = await session.execute(
                select(Occurrence.kind, Occurrence.on_date, Occurrence.due_at)
                .where(Occurrence.state == "scheduled")
                .order_by(Occurrence.due_at)
            )
            return [(row[0], row[1], row[2]) for row in rows]


@pytest.fixture
def traveller() -> Iterator[Any]:
    with time_machine.travel(dt.datetime(2026, 11, 22, 6, 0, tzinfo=UTC), tick=False) as moving:
        yield moving


@pytest.fixture
async def world(tmp_path: Path, traveller: Any) -> AsyncIterator[World]:
    storage = await open_storage(f"sqlite:///{tmp_path}/reminders.db")
    service = ChatService(storage, "UTC")  # the system clock, which time-machine moves
    outbox = Outbox()
    service.reminders.sender = outbox
    yield World(storage, service, outbox, traveller)
    await storage.close()


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def hetrombopag_daily(as_of: str) -> dict[str, Any]:
    """On 5 mg with a count in range: continue, the next dose on `as_of` itself (daily tablets)."""
    day = dt.date.fromisoformat(as_of)
    return hetrombopag(
        as_of=as_of,
        current_dose=dose(5, "mg", str(day - dt.timedelta(days=20)), str(day - dt.timedelta(days=1))),
        labs=[platelets(80, str(day - dt.timedelta(days=1)))],
    )


# --- time zones and DST ---------------------------------------------------------------------------


async def test_reminders_fire_at_the_local_time_in_two_zones(world: World):
    world.traveller.move_to(at("2026-11-22T20:00"))  # 20:00 in London, 05:00 the next day in Tokyo
    london = await world.setup(1, "LDN-1", hetrombopag_daily("2026-11-23"), "08:00", "Europe/London")
    tokyo = await world.setup(2, "TYO-1", hetrombopag_daily("2026-11-23"), "08:00", "Asia/Tokyo")
    assert london["next_dose_date"] == tokyo["next_dose_date"] == "2026-11-23"
    sent = await world.run_until(at("2026-11-23T09:00"))
    doses = [(m.at, m.chat_key) for m in sent if m.first_line.startswith("Dose reminder")]
    # 08:00 in Tokyo (UTC+9) is 23:00 UTC the day before; 08:00 in London in winter is 08:00 UTC.
    assert doses == [(at("2026-11-22T23:00"), "tg:2:2"), (at("2026-11-23T08:00"), "tg:1:1")]


async def test_a_daily_reminder_keeps_its_local_time_across_the_end_of_daylight_saving(world: World):
    world.traveller.move_to(at("2026-10-30T06:00"))
    await world.setup(1, "NY-1", hetrombopag_daily("2026-10-30"), "08:00", "America/New_York")
    sent = await world.run_until(at("2026-11-03T06:00"))
    doses = [m.at for m in sent if m.first_line == "Dose reminder · patient NY-1"]
    # EDT (UTC-4) until 1 November 2026, then EST (UTC-5): 08:00 local throughout.
    assert doses == [at("2026-10-30T12:00"), at("2026-10-31T12:00"), at("2026-11-01T13:00"), at("2026-11-02T13:00")]
    missed = [m.at for m in sent if m.first_line.startswith("Missed dose")]
    # 21:00 local each evening (none confirmed): the next day's reminder follows each.
    assert missed == [at("2026-10-31T01:00"), at("2026-11-01T01:00"), at("2026-11-02T02:00"), at("2026-11-03T02:00")]


async def test_a_reminder_time_in_the_spring_forward_gap_comes_an_hour_later(world: World):
    world.traveller.move_to(at("2027-03-27T06:00"))
    await world.setup(1, "LDN-2", hetrombopag_daily("2027-03-27"), "01:30", "Europe/London")
    sent = await world.run_until(at("2027-03-29T06:00"))
    doses = [m.at for m in sent if m.first_line.startswith("Dose reminder")]
    # Set up at 06:00, after that day's 01:30: due at once. 28 March 2027: 01:00 GMT jumps to
    # 02:00 BST, so 01:30 does not exist; it is read as 02:30 BST (01:30 UTC). Then 01:30 BST.
    assert doses == [at("2027-03-27T06:00"), at("2027-03-28T01:30"), at("2027-03-29T00:30")]


async def test_changing_the_time_zone_moves_unsent_reminders_to_the_same_local_time(world: World):
    await world.setup(1, "RX-1", hetrombopag_daily("2026-11-22"), "08:00", "Europe/London")
    assert (await world.scheduled())[0][2] == dt.datetime(2026, 11, 22, 8, 0)
    replies = await world.service.handle("tg:1", "tg:1:1", text="/settings timezone Europe/Berlin")
    assert replies[0].text.startswith("Time zone set to Europe/Berlin.")
    assert (await world.scheduled())[0][2] == dt.datetime(2026, 11, 22, 7, 0)


# --- Taken, Skip, Snooze -------------------------------------------------------------------------


async def test_taken_records_the_dose_and_schedules_the_next_injection(world: World):
    response = await world.setup(1, "RX-1", romiplostim(), "09:00", "Europe/London")
    assert response["next_dose_date"] == "2026-11-22"
    [reminder] = await world.run_until(at("2026-11-22T09:00"))
    assert reminder.text == (
        "Dose reminder · patient RX-1\nInject Romiplostim today, Sun 2026-11-22: 288 mcg (4 mcg/kg) = 0.58 mL of "
        "the 500 mcg/mL solution.\nConfirm when it is done. Never take or give two doses to make up for one."
    )
    assert [label for row in reminder.buttons for label, _ in row] == ["Taken", "Skip", "Snooze 1 h"]
    answer = await world.press(1, reminder, "Taken")
    assert answer == (
        "Recorded: RX-1 Romiplostim 4 mcg/kg given on Sun 2026-11-22.\nNext dose reminder: Sun 2026-11-29 at 09:00."
    )
    assert (dt.date(2026, 11, 22), "given") in await world.doses()
    assert await world.press(1, reminder, "Taken") == "Already recorded for RX-1: dose of 2026-11-22 taken."
    async with world.storage.session() as session:  # what the next consultation pre-fills
        record = (await world.storage.summaries(session, 1, dt.date(2026, 11, 22)))["RX-1"]
    assert (record.dose_amount, record.dose_since, record.last_given) == (
        "4",
        dt.date(2026, 11, 22),
        dt.date(2026, 11, 22),
    )
    assert record.doses_at_level == 1
    later = await world.run_until(at("2026-11-29T10:00"))
    assert [(m.at, m.first_line) for m in later if m.first_line != "Blood test · patient RX-1"] == [
        (at("2026-11-28T09:00"), "Heads-up · patient RX-1"),
        (at("2026-11-29T09:00"), "Dose reminder · patient RX-1"),
    ]


async def test_skip_records_a_skipped_dose_with_the_drugs_guidance(world: World):
    await world.setup(1, "RX-1", romiplostim(), "09:00", "UTC")
    [reminder] = await world.run_until(at("2026-11-22T09:00"))
    answer = await world.press(1, reminder, "Skip")
    assert answer == (
        "Skipped dose · patient RX-1 · Romiplostim · Sun 2026-11-22\n"
        "Do not double the next one; contact the treating team to give it as soon as possible. "
        "Given late, the next injection is 7 days after the day it is given.\n"
        "Dose: 288 mcg (4 mcg/kg) = 0.58 mL of the 500 mcg/mL solution.\n"
        "Rule: missed.romiplostim · HemaDose ruleset v1.1, section 6 (no label rule)"
    )
    assert (dt.date(2026, 11, 22), "skipped") in await world.doses()
    assert [(kind, day) for kind, day, _ in await world.scheduled()][:2] == [
        ("heads_up", dt.date(2026, 11, 28)),
        ("lab", dt.date(2026, 11, 29)),
    ]


async def test_snooze_sends_again_an_hour_later(world: World):
    await world.setup(1, "HT-1", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    [reminder] = await world.run_until(at("2026-11-22T08:00"))
    assert await world.press(1, reminder, "Snooze 1 h") == "Snoozed: I will remind you again at 09:00."
    [again] = await world.run_until(at("2026-11-22T09:30"))
    assert again.at == at("2026-11-22T09:00")
    assert again.first_line == "Dose reminder · patient HT-1"
    assert (await world.press(1, again, "Taken")).startswith("Recorded: HT-1 Hetrombopag 5 mg given on Sun 2026-11-22.")
    assert await world.run_until(at("2026-11-22T23:00")) == []  # no re-send, no missed dose


# --- the one re-send, late sends, missed doses ---------------------------------------------------


async def test_an_unacknowledged_reminder_is_sent_again_once(world: World):
    await world.setup(1, "RX-1", romiplostim(), "09:00", "UTC")
    sent = await world.run_until(at("2026-11-30T12:00"))
    labs = [(m.at, m.first_line) for m in sent if "Blood test" in m.text]
    assert labs == [
        (at("2026-11-29T09:00"), "Blood test · patient RX-1"),
        (at("2026-11-29T12:00"), "Reminder again, not yet confirmed:"),
    ]


async def test_a_reminder_due_while_the_bot_was_down_is_sent_late_and_says_so(world: World):
    await world.setup(1, "HT-1", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    world.traveller.move_to(at("2026-11-22T10:40"))  # down from before 08:00 until 10:40
    await world.service.reminders.run_due()
    [late] = world.outbox.take()
    assert late.text.startswith(
        "Late: this reminder was due 08:00 on Sun 2026-11-22; the assistant was offline.\nDose reminder · patient HT-1"
    )


async def test_hetrombopag_missed_in_the_evening_is_not_made_up(world: World):
    await world.setup(1, "HT-1", hetrombopag_daily("2026-11-22"), "08:00", "Europe/Berlin")
    sent = await world.run_until(at("2026-11-22T21:00"))
    missed = sent[-1]
    assert missed.at == at("2026-11-22T20:00")  # 21:00 in Berlin
    assert missed.text == (
        "Missed dose · patient HT-1 · Hetrombopag · Sun 2026-11-22\nDo not take two doses to make up. Take the next "
        "dose at the usual time, on an empty stomach, and tell the treating team.\n"
        "Rule: missed.hetrombopag · HemaDose ruleset v1.1, section 6 (no label rule)"
    )
    assert missed.buttons == []
    assert (dt.date(2026, 11, 22), "missed") in await world.doses()
    assert (await world.scheduled())[0][:2] == ("dose", dt.date(2026, 11, 23))


async def test_lusutrombopag_missed_today_is_taken_today_and_a_passed_day_is_not_made_up(world: World):
    request = lusutrombopag(as_of="2026-11-22")
    response = await world.setup(1, "LV-1", request, "08:00", "UTC")
    assert response["action"] == "start"
    first = dt.date.fromisoformat(response["schedule"][0])
    due_day = dt.datetime.combine(first, dt.time(21, 0), tzinfo=UTC)
    sent = await world.run_until(due_day)
    missed = sent[-1]
    assert missed.first_line == f"Missed dose · patient LV-1 · Lusutrombopag · {first:%a %Y-%m-%d}"
    assert missed.text.splitlines()[1:] == [
        "Take it as soon as possible today, then the usual schedule tomorrow. Never two doses in one day.",
        "Dose: 3 mg by mouth once daily.",
        "Rule: missed.lusutrombopag · HemaDose ruleset v1.1, section 6 (Mulpleta US PI 2.1)",
    ]
    answer = await world.press(1, missed, "Taken today")
    assert answer.startswith(f"Recorded: LV-1 Lusutrombopag 3 mg given on {first:%a %Y-%m-%d}.")
    # The bot is down from before the next day's reminder until the day after: that dose is not
    # declared missed (its reminder never reached the user) but asked about; a No gives the guidance.
    world.traveller.move_to(dt.datetime.combine(first + dt.timedelta(days=2), dt.time(7, 0), tzinfo=UTC))
    await world.service.reminders.run_due()
    second = first + dt.timedelta(days=1)
    [asked] = [m for m in world.outbox.take() if not m.first_line.startswith("Late:")]
    assert asked.first_line == f"Unconfirmed dose · patient LV-1 · Lusutrombopag · {second:%a %Y-%m-%d}"
    passed = await world.press(1, asked, "No, not taken")
    assert passed.splitlines()[1] == (
        f"The dose of {second} is not made up: the course is one day shorter. Take today's dose as usual "
        "(never two in one day) and tell the treating team before the procedure."
    )
    assert (second, "missed") in await world.doses()


async def test_romiplostim_missed_the_day_after_asks_the_team(world: World):
    await world.setup(1, "RX-1", romiplostim(), "09:00", "UTC")
    sent = await world.run_until(at("2026-11-23T09:00"))
    assert [m.first_line for m in sent] == [
        "Dose reminder · patient RX-1",
        "Reminder again, not yet confirmed:",
        "Missed dose · patient RX-1 · Romiplostim · Sun 2026-11-22",
    ]
    assert sent[-1].at == at("2026-11-23T09:00")
    assert "contact the treating team to give it as soon as possible" in sent[-1].text


async def test_luspatercept_given_late_moves_the_next_dose_21_days_on(world: World):
    request = luspatercept(
        as_of="2026-11-22",
        current_dose=dose(1, "mg/kg", "2026-10-01", "2026-11-01"),
        labs=[hemoglobin(9.2, "2026-11-21"), hemoglobin(9.0, "2026-11-01")],
    )
    response = await world.setup(1, "LP-1", request, "10:00", "UTC")
    scheduled = dt.date.fromisoformat(response["next_dose_date"])
    deadline = dt.datetime.combine(scheduled + dt.timedelta(days=1), dt.time(10, 0), tzinfo=UTC)
    missed = (await world.run_until(deadline))[-1]
    assert missed.first_line == f"Missed dose · patient LP-1 · Luspatercept · {scheduled:%a %Y-%m-%d}"
    assert "Rule: missed.luspatercept · HemaDose ruleset v1.1, section 6 (Reblozyl US PI 2.3, missed dose)" in (
        missed.text
    )
    world.traveller.move_to(deadline + dt.timedelta(days=2))
    given = deadline.date() + dt.timedelta(days=2)
    answer = await world.press(1, missed, "Given today")
    assert f"given on {given:%a %Y-%m-%d}" in answer
    assert f"Next dose reminder: {given + dt.timedelta(days=21):%a %Y-%m-%d} at 10:00." in answer
    doses = await world.doses()
    assert (scheduled, "missed") in doses
    assert (given, "given") in doses


async def test_a_user_cannot_answer_another_users_reminder(world: World):
    await world.setup(1, "RX-1", romiplostim(), "09:00", "UTC")
    [reminder] = await world.run_until(at("2026-11-22T09:00"))
    answer = await world.press(2, reminder, "Taken")
    assert answer == "That reminder is not one of yours, or no longer exists. /reminders lists yours."
    assert await world.doses() == [(dt.date(2026, 11, 15), "given")]  # only what the consultation saved
    listing = await world.service.handle("tg:2", "tg:2:2", text="/reminders")
    assert "RX-1" not in listing[0].text


async def test_pause_and_resume_drop_what_fell_due_meanwhile(world: World):
    await world.setup(1, "HT-1", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    listing = (await world.service.handle("tg:1", "tg:1:1", text="/reminders"))[0]
    assert listing.text.splitlines()[1] == (
        "• HT-1 · Hetrombopag 5 mg by mouth once daily; "
        + EMPTY_STOMACH
        + " · 08:00 · active · next: dose Sun 2026-11-22"
    )
    pause = next(b.data for row in listing.buttons for b in row if b.label == "Pause HT-1")
    await world.service.handle("tg:1", "tg:1:1", button=pause)
    assert await world.run_until(at("2026-11-24T12:00")) == []
    listing = (await world.service.handle("tg:1", "tg:1:1", text="/reminders"))[0]
    resume = next(b.data for row in listing.buttons for b in row if b.label == "Resume HT-1")
    assert (await world.service.handle("tg:1", "tg:1:1", button=resume))[0].text == (
        "Reminders for HT-1 resumed. Days that passed while paused are not reminded; a dose still open today is."
    )
    # Resumed at noon: the days paused through are dropped; today's dose is still open until 21:00.
    sent = await world.run_until(at("2026-11-24T12:00"))
    assert [(m.at, m.text.splitlines()[1]) for m in sent] == [
        (
            at("2026-11-24T12:00"),
            "Take Hetrombopag today, Tue 2026-11-24: 5 mg by mouth once daily; " + EMPTY_STOMACH,
        )
    ]


def test_the_may_repeat_note_is_one_line() -> None:
    assert "\n" not in MAY_REPEAT


async def test_a_failed_send_is_retried_later_and_a_final_failure_is_not(world: World):
    from bot.reminders import DeliveryError
    from bot.storage.tables import Delivery

    await world.setup(1, "HT-1", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    await world.setup(2, "HT-2", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    accepted = world.outbox
    failures = {"tg:1:1": DeliveryError("TimedOut"), "tg:2:2": DeliveryError("Forbidden", permanent=True)}

    async def failing_once(chat_key: str, text: str, buttons: Buttons) -> int:
        if chat_key in failures:
            raise failures.pop(chat_key) if chat_key == "tg:1:1" else failures[chat_key]
        return await accepted(chat_key, text, buttons)

    world.service.reminders.sender = failing_once
    world.traveller.move_to(at("2026-11-22T08:00"))
    assert await world.service.reminders.run_due() == 0
    world.traveller.move_to(at("2026-11-22T08:01"))  # the retry, a minute later
    assert await world.service.reminders.run_due() == 1
    assert [(m.chat_key, m.first_line) for m in world.outbox.take()] == [("tg:1:1", "Dose reminder · patient HT-1")]
    async with world.storage.session() as session:
        states = {row[0]: row[1] for row in await session.execute(select(Delivery.chat_key, Delivery.state))}
    assert states == {"tg:1:1": "sent", "tg:2:2": "failed"}  # the blocked chat is not tried again


# --- found in review: stopped, paused, late and repeated answers ----------------------------------


async def test_a_late_dose_on_a_replaced_schedule_is_recorded_but_schedules_nothing(world: World):
    await world.setup(1, "RX-1", romiplostim(), "09:00", "UTC")
    sent = await world.run_until(at("2026-11-23T09:00"))
    missed = sent[-1]
    assert missed.first_line.startswith("Missed dose")
    # A new consultation replaces the reminders (the old schedule stops) ...
    world.traveller.move_to(at("2026-11-23T10:00"))
    await world.setup(1, "RX-1", romiplostim(as_of="2026-11-23"), "18:00", "UTC")
    # ... and then the old missed-dose message is answered.
    answer = await world.press(1, missed, "Given today")
    assert answer.endswith("The reminders for RX-1 are stopped: no next one is set.")
    sent = await world.run_until(at("2026-12-01T00:00"))
    assert {m.at.hour for m in sent} == {18, 21}  # only the new schedule (18:00, re-sent at 21:00)


async def test_taken_after_the_next_reminder_went_out_makes_no_duplicate_and_no_false_missed(world: World):
    await world.setup(1, "RX-1", romiplostim(), "09:00", "UTC")
    missed = (await world.run_until(at("2026-11-23T09:00")))[-1]
    sent = await world.run_until(at("2026-11-29T09:30"))
    assert "Dose reminder · patient RX-1" in [m.first_line for m in sent]  # the 29th's reminder is out
    answer = await world.press(1, missed, "Given today")
    assert answer.splitlines()[-1] == "Next dose reminder: Sun 2026-12-06 at 09:00."
    later = await world.run_until(at("2026-12-07T12:00"))
    doses = [m for m in later if m.first_line == "Dose reminder · patient RX-1"]
    assert [m.at for m in doses] == [at("2026-12-06T09:00")]
    assert not any(m.first_line.startswith("Missed dose") and "2026-11-29" in m.first_line for m in later)
    assert (dt.date(2026, 11, 29), "missed") not in await world.doses()


async def test_a_second_dose_the_same_day_is_refused_and_the_schedule_goes_on(world: World):
    await world.setup(1, "HT-1", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    [first] = await world.run_until(at("2026-11-22T08:00"))
    await world.press(1, first, "Taken")
    async with world.storage.session() as session, session.begin():  # a stray occurrence the same day
        session.add(
            Occurrence(
                reminder_id=1,
                kind="dose",
                on_date=dt.date(2026, 11, 22),
                due_at=dt.datetime(2026, 11, 22, 8, 1),
                state="sent",
                sends=1,
                next_at=None,
            )
        )
    async with world.storage.session() as session:
        stray_id = await session.scalar(select(func.max(Occurrence.id)))
    stray = Sent(dt.datetime.now(UTC), "tg:1:1", "", [[["Taken", f"oc:t:{stray_id}"]]])
    assert (await world.press(1, stray, "Taken")).endswith("Never two doses in one day.")
    assert [kind for kind, _, _ in await world.scheduled()].count("dose") == 1  # tomorrow's, once


async def test_resuming_after_the_days_deadline_misses_nothing_and_a_stale_resume_is_harmless(world: World):
    await world.setup(1, "HT-1", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    listing = (await world.service.handle("tg:1", "tg:1:1", text="/reminders"))[0]
    pause = next(b.data for row in listing.buttons for b in row if b.label == "Pause HT-1")
    await world.service.handle("tg:1", "tg:1:1", button=pause)
    world.traveller.move_to(at("2026-11-24T22:00"))  # resumed after that day's 21:00 deadline
    resume = pause.replace("rm:p:", "rm:r:")
    await world.service.handle("tg:1", "tg:1:1", button=resume)
    assert (await world.service.handle("tg:1", "tg:1:1", button=resume))[0].text == (
        "The reminders for HT-1 are already on."
    )
    sent = await world.run_until(at("2026-11-25T08:00"))
    assert [(m.at, m.first_line) for m in sent] == [(at("2026-11-25T08:00"), "Dose reminder · patient HT-1")]
    assert all(status != "missed" for _, status in await world.doses())


async def test_a_new_time_zone_never_turns_an_unsent_dose_into_a_missed_one(world: World):
    world.traveller.move_to(at("2026-11-22T15:00"))  # 10:00 in New York
    await world.setup(1, "HT-1", hetrombopag_daily("2026-11-22"), "20:00", "America/New_York")
    await world.service.handle("tg:1", "tg:1:1", text="/settings timezone Asia/Tokyo")  # 00:00 there
    sent = await world.run_until(at("2026-11-22T16:00"))
    assert not any(m.first_line.startswith("Missed dose") for m in sent)
    # Its day already over in Tokyo, the 22nd's dose keeps its New York time (20:00 = 01:00 UTC) and
    # deadline; the days after follow Tokyo (20:00 = 11:00 UTC).
    sent = await world.run_until(at("2026-11-23T11:00"))
    assert [(m.at, m.first_line) for m in sent] == [
        (at("2026-11-23T01:00"), "Dose reminder · patient HT-1"),
        (at("2026-11-23T03:00"), "Missed dose · patient HT-1 · Hetrombopag · Sun 2026-11-22"),
        (at("2026-11-23T11:00"), "Dose reminder · patient HT-1"),
    ]


async def test_a_delivery_key_already_written_is_not_sent_again_and_does_not_block_the_run(
    world: World, caplog: pytest.LogCaptureFixture
):
    from bot.storage.tables import Delivery

    await world.setup(1, "HT-1", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    await world.setup(2, "HT-2", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    async with world.storage.session() as session, session.begin():  # as if occurrence 1 was sent before
        session.add(
            Delivery(
                key="1:r",
                occurrence_id=1,
                chat_key="tg:1:1",
                text="earlier",
                buttons=[],
                state="sent",
                attempts=1,
                created_at=dt.datetime(2026, 11, 22, 8, 0),
            )
        )
    world.traveller.move_to(at("2026-11-22T08:00"))
    assert await world.service.reminders.run_due() == 1
    assert [(m.chat_key, m.first_line) for m in world.outbox.take()] == [("tg:2:2", "Dose reminder · patient HT-2")]
    assert "delivery 1:r already exists; not sent again" in caplog.text


async def test_the_terminal_delivers_only_its_own_chat(world: World):
    await save_with_reminders(world.service, 1, "A-1", hetrombopag_daily("2026-11-22"), "08:00", "UTC", "local:ann")
    await save_with_reminders(world.service, 2, "A-2", hetrombopag_daily("2026-11-22"), "08:00", "UTC", "local:anna")
    world.service.reminders.chats = "local:ann"
    sent = await world.run_until(at("2026-11-22T08:00"))
    assert [m.chat_key for m in sent] == ["local:ann"]


async def test_a_message_queued_before_stop_is_dropped_not_sent(world: World):
    from bot.storage.tables import Delivery

    await world.setup(1, "HT-1", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    world.traveller.move_to(at("2026-11-22T08:00"))
    assert await world.service.reminders._claim_due() == ["1:r"]  # queued, then the process stops
    listing = (await world.service.handle("tg:1", "tg:1:1", text="/reminders"))[0]
    stop = next(b.data for row in listing.buttons for b in row if b.label == "Stop HT-1")
    await world.service.handle("tg:1", "tg:1:1", button=stop)
    assert await world.service.reminders.run_due() == 0
    assert world.outbox.take() == []
    async with world.storage.session() as session:
        assert await session.scalar(select(Delivery.state)) == "dropped"


# --- RULES.md 6a: what a reminder says -------------------------------------------------------------

CONFIRM = "Confirm when it is done. Never take or give two doses to make up for one."


async def test_a_romiplostim_reminder_for_a_child_carries_the_dilution_with_its_volume(world: World):
    """RULES.md 7 case 9: 12 kg, 12 mcg < 23 mcg -> 0.10 mL only after dilution to 125 mcg/mL."""
    request = romiplostim(patient={"weight_kg": 12, "age_years": 2}, labs=[platelets(60, "2026-11-21")])
    request["current_dose"] = dose(1, "mcg/kg", "2026-11-01", "2026-11-15")
    await world.setup(1, "RX-C", request, "09:00", "UTC")
    [reminder] = await world.run_until(at("2026-11-22T09:00"))
    assert reminder.text == (
        "Dose reminder · patient RX-C\nInject Romiplostim today, Sun 2026-11-22: 12 mcg (1 mcg/kg) = 0.10 mL "
        "after dilution to 125 mcg/mL (preservative-free 0.9% sodium chloride).\n" + CONFIRM
    )


async def test_a_luspatercept_reminder_says_how_many_injections(world: World):
    """RULES.md 7 case 23: 93.1 mg = 1.86 mL, more than 1.2 mL: 2 injections."""
    await world.setup(1, "LP-2", luspatercept(), "10:00", "UTC")
    [reminder] = await world.run_until(at("2026-11-22T10:00"))
    assert reminder.text == (
        "Dose reminder · patient LP-2\nInject Luspatercept today, Sun 2026-11-22: 93.1 mg (1.33 mg/kg) = 1.86 mL "
        "of the 50 mg/mL solution, as 2 injections (at most 1.2 mL each).\n" + CONFIRM
    )


async def test_a_hetrombopag_reminder_says_empty_stomach(world: World):
    await world.setup(1, "HT-3", hetrombopag(), "08:00", "UTC")
    [reminder] = await world.run_until(at("2026-11-22T08:00"))
    assert reminder.text == (
        "Dose reminder · patient HT-3\nTake Hetrombopag today, Sun 2026-11-22: 5 mg by mouth once daily; "
        + EMPTY_STOMACH
        + "\n"
        + CONFIRM
    )


async def test_a_lusutrombopag_reminder_restates_the_course_dose(world: World):
    await world.setup(1, "LV-2", lusutrombopag(), "08:00", "UTC")
    [reminder] = await world.run_until(at("2026-11-22T08:00"))
    assert reminder.text == (
        "Dose reminder · patient LV-2\nTake Lusutrombopag today, Sun 2026-11-22: 3 mg by mouth once daily.\n" + CONFIRM
    )


async def test_next_weeks_romiplostim_reminder_asks_for_the_count_first_and_leads_to_a_follow_up(world: World):
    await world.setup(1, "RX-1", romiplostim(), "09:00", "UTC")
    [first] = await world.run_until(at("2026-11-22T09:00"))
    await world.press(1, first, "Taken")
    sent = await world.run_until(at("2026-11-29T09:00"))
    heads_up, lab, reminder = sent
    assert heads_up.text == (
        "Heads-up · patient RX-1\nRomiplostim injection due tomorrow, Sun 2026-11-29. Its dose depends on a new "
        "platelet count: enter it for a new decision before the injection.\n"
        "Last decided: 288 mcg (4 mcg/kg) = 0.58 mL of the 500 mcg/mL solution."
    )
    assert heads_up.buttons == [[["Enter today's platelet count", "fu:RX-1"]]]
    assert lab.text == (
        "Blood test · patient RX-1\nPlatelet count due Sun 2026-11-29, the date the recommendation set."
    )
    assert reminder.text == (
        "Dose reminder · patient RX-1\nRomiplostim injection due today, Sun 2026-11-29. Its dose depends on "
        "today's platelet count: enter it first for a new decision.\n"
        "Last decided: 288 mcg (4 mcg/kg) = 0.58 mL of the 500 mcg/mL solution.\n"
        "Confirm when it is given. Never give two doses to make up for one."
    )
    assert reminder.buttons[0] == [["Enter today's platelet count", "fu:RX-1"]]
    assert [label for label, _ in reminder.buttons[1]] == ["Taken", "Skip", "Snooze 1 h"]


async def test_the_enter_result_button_goes_to_the_consultation_not_to_the_reminder_answers(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    await world.setup(1, "RX-1", romiplostim(), "09:00", "UTC")

    async def not_a_reminder_answer(*args: Any) -> Any:
        raise AssertionError("fu: data reached the reminder answers")

    monkeypatch.setattr(world.service.reminders, "answer", not_a_reminder_answer)
    monkeypatch.setattr(world.service.reminders, "manage", not_a_reminder_answer)
    seen: list[Any] = []
    import bot.service
    from flows.consultation import run as original  # the service's run_flow

    def spy(chat: Any, message: Any, env: Any) -> Any:
        seen.append((message.button, sorted(env.patients)))
        return original(chat, message, env)

    monkeypatch.setattr(bot.service, "run_flow", spy)
    await world.service.handle("tg:1", "tg:1:1", button="fu:RX-1")
    assert seen[-1:] == [("fu:RX-1", ["RX-1"])]


async def test_a_luspatercept_dose_after_the_decided_one_asks_for_the_haemoglobin_first(world: World):
    await world.setup(1, "LP-3", luspatercept(), "10:00", "UTC")
    [first] = await world.run_until(at("2026-11-22T10:00"))
    await world.press(1, first, "Taken")
    sent = await world.run_until(at("2026-12-13T10:00"))
    reminder = next(m for m in sent if m.first_line == "Dose reminder · patient LP-3")
    assert reminder.text.splitlines()[1:3] == [
        "Luspatercept injection due today, Sun 2026-12-13. Its dose depends on today's haemoglobin: enter it "
        "first for a new decision.",
        "Last decided: 93.1 mg (1.33 mg/kg) = 1.86 mL of the 50 mg/mL solution, as 2 injections (at most 1.2 mL each).",
    ]
    assert reminder.buttons[0] == [["Enter today's haemoglobin", "fu:LP-3"]]


# --- RULES.md 6: missed versus unconfirmed, late confirmation ----------------------------------------


async def test_a_reminder_whose_sends_all_failed_until_the_deadline_is_asked_about_not_missed(world: World):
    from bot.reminders import DeliveryError

    await world.setup(1, "HT-1", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    accepted = world.outbox
    down = True

    async def failing(chat_key: str, text: str, buttons: Buttons) -> int:
        if down:
            raise DeliveryError("NetworkError")
        return await accepted(chat_key, text, buttons)

    world.service.reminders.sender = failing
    assert await world.run_until(at("2026-11-22T20:59")) == []
    down = False
    sent = await world.run_until(at("2026-11-22T21:00"))
    assert [m.first_line for m in sent] == ["Unconfirmed dose · patient HT-1 · Hetrombopag · Sun 2026-11-22"]
    assert sent[0].text.splitlines()[1] == (
        "The reminder due 08:00 on Sun 2026-11-22 could not reach you before its deadline (the assistant was "
        "offline or the message failed). Was the dose of Sun 2026-11-22 taken?"
    )
    assert all(status != "missed" for _, status in await world.doses())
    # the reminder itself, still waiting for a retry, is not sent after its question
    assert all(m.first_line != "Dose reminder · patient HT-1" for m in await world.run_until(at("2026-11-22T22:00")))
    answer = await world.press(1, sent[0], "No, not taken")
    assert answer.startswith("Missed dose · patient HT-1 · Hetrombopag · Sun 2026-11-22\nDo not take two doses")
    assert (dt.date(2026, 11, 22), "missed") in await world.doses()
    assert await world.press(1, sent[0], "Yes, taken on Sun 2026-11-22") == (
        "Already recorded for HT-1: dose of 2026-11-22 missed."
    )


async def test_an_injection_confirmed_late_is_recorded_on_the_day_chosen_and_the_next_week_follows_it(world: World):
    await world.setup(1, "RX-1", romiplostim(), "09:00", "UTC")
    reminder = (await world.run_until(at("2026-11-23T10:00")))[0]  # missed at Mon 09:00
    world.traveller.move_to(at("2026-11-24T08:00"))
    question = await world.service.handle("tg:1", "tg:1:1", button=reminder.data("Taken"))
    assert question[0].text == "Romiplostim for RX-1, the dose of Sun 2026-11-22: on which day was it given?"
    labels = [button.label for row in question[0].buttons for button in row]
    assert labels == ["Given on Sun 2026-11-22", "Given on Mon 2026-11-23", "Given today, Tue 2026-11-24"]
    chosen = next(b.data for row in question[0].buttons for b in row if b.label == "Given on Mon 2026-11-23")
    answer = (await world.service.handle("tg:1", "tg:1:1", button=chosen))[0].text
    assert answer == (
        "Recorded: RX-1 Romiplostim 4 mcg/kg given on Mon 2026-11-23.\nNext dose reminder: Mon 2026-11-30 at 09:00."
    )
    doses = await world.doses()
    assert (dt.date(2026, 11, 23), "given") in doses
    assert (dt.date(2026, 11, 22), "missed") not in doses  # taken late is not missed
    sent = await world.run_until(at("2026-12-01T00:00"))
    assert [m.at for m in sent if m.first_line == "Dose reminder · patient RX-1"] == [at("2026-11-30T09:00")]
    # a forged day outside what was offered records nothing
    forged = chosen.rsplit(":", 1)[0] + ":20261101"
    assert (await world.service.handle("tg:1", "tg:1:1", button=forged))[0].text == (
        "Already recorded for RX-1: dose of 2026-11-22 taken."
    )


async def test_a_day_outside_the_dose_and_today_is_refused(world: World):
    await world.setup(1, "RX-1", romiplostim(), "09:00", "UTC")
    reminder = (await world.run_until(at("2026-11-22T09:00")))[0]
    occurrence = reminder.data("Taken").split(":")[2]
    for day in ("20261121", "20261123"):
        answer = await world.service.handle("tg:1", "tg:1:1", button=f"oc:d:{occurrence}:{day}")
        assert answer[0].text == "The dose of 2026-11-22 for RX-1 can be recorded on Sun 2026-11-22; nothing recorded."
    answer = await world.service.handle("tg:1", "tg:1:1", button=f"oc:d:{occurrence}:20261399")
    assert answer[0].text == "I did not understand that button. /reminders lists your reminders."
    assert await world.doses() == [(dt.date(2026, 11, 15), "given")]


async def test_lusutrombopag_day_7_missed_the_course_then_ends(world: World):
    response = await world.setup(1, "LV-3", lusutrombopag(), "08:00", "UTC")
    last = dt.date.fromisoformat(response["schedule"][-1])
    sent = await world.run_until(dt.datetime.combine(last, dt.time(21, 0), tzinfo=UTC))
    missed = sent[-1]
    assert missed.text == (
        f"Missed dose · patient LV-3 · Lusutrombopag · {last:%a %Y-%m-%d}\n"
        "Take it as soon as possible today; it is the course's last day (day 7), so the course then ends. "
        "Never two doses in one day.\nDose: 3 mg by mouth once daily.\n"
        "Rule: missed.lusutrombopag · HemaDose ruleset v1.1, section 6 (Mulpleta US PI 2.1)"
    )


# --- buttons checked against the reminder's kind; a blocked bot --------------------------------------


async def test_a_forged_taken_on_a_blood_test_reminder_records_nothing(world: World):
    await world.setup(1, "RX-1", romiplostim(), "09:00", "UTC")
    sent = await world.run_until(at("2026-11-29T09:00"))
    lab = next(m for m in sent if m.first_line == "Blood test · patient RX-1")
    occurrence = lab.data("Noted").split(":")[2]
    before = (await world.doses(), await world.scheduled())
    for action in ("t", "s", "z", "g", "y", "x"):
        answer = await world.service.handle("tg:1", "tg:1:1", button=f"oc:{action}:{occurrence}")
        assert answer[0].text == (
            "That button does not belong to this reminder: it is the blood-test reminder for RX-1 (platelet count "
            "due Sun 2026-11-29); a dose is confirmed on its dose reminder. Nothing recorded."
        )
    assert (await world.doses(), await world.scheduled()) == before
    dose_reminder = next(m for m in sent if m.first_line == "Dose reminder · patient RX-1")
    forged_noted = dose_reminder.data("Taken").replace("oc:t:", "oc:n:")
    assert (await world.service.handle("tg:1", "tg:1:1", button=forged_noted))[0].text == (
        "That button does not belong to this reminder: it is the dose reminder for RX-1 of Sun 2026-11-22; "
        "a blood test is noted on its own reminder. Nothing recorded."
    )


async def test_a_user_who_blocked_the_bot_has_reminders_paused_and_is_told_once(world: World):
    from bot.reminders import DeliveryError

    await world.setup(1, "HT-1", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    await world.setup(2, "HT-2", hetrombopag_daily("2026-11-22"), "08:00", "UTC")
    accepted, attempts = world.outbox, []

    async def blocked_by_user_1(chat_key: str, text: str, buttons: Buttons) -> int:
        if chat_key == "tg:1:1":
            attempts.append(text)
            raise DeliveryError("Forbidden: bot was blocked by the user", blocked=True)
        return await accepted(chat_key, text, buttons)

    world.service.reminders.sender = blocked_by_user_1
    sent = await world.run_until(at("2026-11-24T12:00"))
    assert len(attempts) == 1  # paused at the first refusal: no re-send, no missed message, no next day
    assert {m.chat_key for m in sent} == {"tg:2:2"}
    first = await world.service.handle("tg:1", "tg:1:1", text="/help")
    assert first[0].text == (
        "Your reminders were paused because messages could not be delivered; /reminders to resume."
    )
    again = await world.service.handle("tg:1", "tg:1:1", text="/reminders")
    assert all("could not be delivered" not in reply.text for reply in again)
    assert "· 08:00 · paused ·" in again[0].text
    other = await world.service.handle("tg:2", "tg:2:2", text="/reminders")
    assert "· 08:00 · active ·" in other[0].text
    resume = next(b.data for row in again[0].buttons for b in row if b.label == "Resume HT-1")
    assert (await world.service.handle("tg:1", "tg:1:1", button=resume))[0].text.startswith(
        "Reminders for HT-1 resumed."
    )


def test_the_plan_marks_the_decided_dose_and_the_summary_says_which_ask_for_the_result_first() -> None:
    from core import recommend
    from core.models import DoseRequest
    from core.reminders import PlannedReminder, plan
    from flows.reminders import plan_summary

    response = recommend(DoseRequest.model_validate(romiplostim()))  # next dose Sun 2026-11-22
    on_time = plan("romiplostim", response, dt.datetime(2026, 11, 22, 8, 0), dt.time(9, 0))
    assert on_time == [
        PlannedReminder("dose", dt.date(2026, 11, 22), None, True),
        PlannedReminder("lab", dt.date(2026, 11, 29)),
    ]
    awaiting = [
        PlannedReminder("heads_up", dt.date(2026, 11, 28), dt.date(2026, 11, 29), False),
        PlannedReminder("lab", dt.date(2026, 11, 29)),
        PlannedReminder("dose", dt.date(2026, 11, 29), None, False),
    ]
    summary = plan_summary("RX-1", awaiting, dt.time(9, 0), "UTC", "platelet count", "288 mcg (4 mcg/kg) = 0.58 mL")
    assert summary.splitlines()[:5] == [
        "Reminders set for RX-1 at 09:00 (UTC):",
        "• Sat 2026-11-28: heads-up: dose tomorrow (the reminder asks for the new result first)",
        "• Sun 2026-11-29: platelet count",
        "• Sun 2026-11-29: dose (the reminder asks for the new result first)",
        "Last decided: 288 mcg (4 mcg/kg) = 0.58 mL.",
    ]
    summary = plan_summary("RX-1", on_time, dt.time(9, 0), "UTC", "platelet count", "288 mcg (4 mcg/kg) = 0.58 mL")
    assert summary.splitlines()[1:4] == [
        "• Sun 2026-11-22: dose",
        "• Sun 2026-11-29: platelet count",
        "Dose as decided: 288 mcg (4 mcg/kg) = 0.58 mL.",
    ]
    hetrombopag_plan = plan(
        "hetrombopag", recommend(DoseRequest.model_validate(hetrombopag())), dt.datetime(2026, 11, 22, 22), dt.time(8)
    )
    assert all(p.decided for p in hetrombopag_plan)  # the daily dose stands (RULES.md 6a)
