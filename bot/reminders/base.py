"""What every part of the reminders shares: timings, states, the delivery error and sender, the
tables used by core statements, local-time arithmetic, and the dose records written by both the
loop (a missed dose) and the user's answers (taken, skipped)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, select

from bot.storage import Storage
from bot.storage.session import DbSession
from bot.storage.tables import Delivery, Dose, Occurrence, PatientRow, Reminder
from core.missed import missed_dose_guidance
from flows import reminders as words
from flows.replies import Reply

Clock = Callable[[], dt.datetime]  # aware "now"
Buttons = list[list[list[str]]]  # rows of [label, data], as stored

RESEND_AFTER = dt.timedelta(hours=3)  # a reminder not acknowledged is sent again once, this much later
SNOOZE = dt.timedelta(hours=1)
LATE_AFTER = dt.timedelta(minutes=15)  # sent later than this after its time: it says it is late
RETRY_AFTER = dt.timedelta(minutes=1)  # a send that failed (after the sender's own retries) is tried again
GIVE_UP_AFTER = 20  # failed rounds of a delivery before it is marked failed (about a day with back-off)


class OccurrenceState(StrEnum):
    """Where one reminder day stands (`Occurrence.state`). A StrEnum: the values are the strings stored
    in the plain String column, so rows written before the enum read the same."""

    SCHEDULED = "scheduled"  # not yet sent
    SENT = "sent"  # sent, not yet answered
    SNOOZED = "snoozed"  # the user asked to be reminded again later
    TAKEN = "taken"
    SKIPPED = "skipped"
    MISSED = "missed"  # reached the user; the deadline passed without Taken
    UNKNOWN = "unknown"  # never reached the user before the deadline (RULES.md 6 "unconfirmed")
    DONE = "done"  # a heads-up sent, a lab reminder noted: nothing left to do
    CANCELLED = "cancelled"  # stopped, replaced, or dropped while paused


ACTIVE_STATES = (OccurrenceState.SCHEDULED, OccurrenceState.SENT, OccurrenceState.SNOOZED)
ANSWERED_STATES = (OccurrenceState.TAKEN, OccurrenceState.SKIPPED, OccurrenceState.MISSED, OccurrenceState.UNKNOWN)


class DeliveryState(StrEnum):
    """Where a message is on its way out (`Delivery.state`; these values are what is stored)."""

    QUEUED = "queued"  # decided, not handed to the transport (held by a replica while its lease runs)
    SENDING = "sending"  # about to be or being handed over: after a crash it is re-sent with the may-repeat note
    SENT = "sent"  # the transport accepted it
    RETRY = "retry"  # failed; tried again at `next_try_at`
    FAILED = "failed"  # given up
    DROPPED = "dropped"  # no longer wanted (its occurrence was stopped or answered)


class Purpose(StrEnum):
    """What a delivery is for: the letter after '<occurrence>:' in its key (stored as these letters)."""

    REMINDER = "r"  # the reminder itself, first time
    AGAIN = "a"  # the one re-send of an unanswered reminder
    SNOOZED = "z"  # after a snooze: followed by the moment, so each snooze has a key of its own
    MISSED = "m"  # the missed-dose guidance
    UNCONFIRMED = "u"  # the question whether an unconfirmed dose was taken


REMINDER_PURPOSES = (Purpose.REMINDER, Purpose.AGAIN, Purpose.SNOOZED)  # the reminder itself: not 'm' or 'u'


class DeliveryError(Exception):
    """The sender could not deliver. `permanent`: it never will (e.g. the user blocked the bot)."""

    def __init__(self, reason: str, permanent: bool = False, blocked: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent or blocked
        self.blocked = blocked  # the user blocked the bot: their reminders are paused


class Sender(Protocol):
    async def __call__(self, chat_key: str, text: str, buttons: Buttons, /) -> int | None:
        """Send one message; the message id once the transport accepted it; DeliveryError if not."""
        ...


_DELIVERIES, _OCCURRENCES, _REMINDERS, _PATIENTS = (
    cast(Table, model.__table__) for model in (Delivery, Occurrence, Reminder, PatientRow)
)


def _naive(moment: dt.datetime) -> dt.datetime:
    """UTC without tzinfo, as stored (SQLite keeps no zone)."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def utc_at(day: dt.date, at: dt.time, zone: str) -> dt.datetime:
    """The UTC instant of a local day and time. In a DST gap the clock time is read with the offset
    before the change (02:30 on a spring-forward night is 03:30 local); in the repeated hour, the first."""
    return _naive(dt.datetime.combine(day, at, tzinfo=ZoneInfo(zone)))


def local(moment: dt.datetime, zone: str) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(zone))


class ReminderBase:
    """The storage, the clock and this process's chats; the dose records the parts share."""

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        default_time_zone: str = "UTC",
        sender: Sender | None = None,
        batch: int = 500,
        chats: str = "",
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.default_time_zone = default_time_zone
        self.sender = sender
        self.batch = batch
        # The chats this process delivers to (a key prefix: 'tg:' for the bot, 'local:' for the
        # terminal), so that two transports on one database never take each other's messages.
        self.chats = chats
        self._lock = asyncio.Lock()

    def now(self) -> dt.datetime:
        return _naive(self.clock())

    async def _guidance(
        self,
        session: DbSession,
        occurrence: Occurrence,
        reminder: Reminder,
        label: str,
        today: dt.date,
        skipped: bool = False,
    ) -> Reply:
        """The drug's missed-dose rule for this dose (a lusutrombopag course's last day ends it)."""
        drug = reminder.drug
        last = False
        if drug == "lusutrombopag":
            later = await session.scalar(
                select(func.count())
                .select_from(Occurrence)
                .where(
                    Occurrence.reminder_id == reminder.id,
                    Occurrence.kind == "dose",
                    Occurrence.on_date > occurrence.on_date,
                    Occurrence.state != OccurrenceState.CANCELLED,
                )
            )
            last = not later
        guidance = missed_dose_guidance(drug, occurrence.on_date, today, last_of_course=last)
        decided = occurrence.dose_decided
        return words.missed_message(
            occurrence.id, label, occurrence.on_date, guidance, reminder.dose_text, decided, skipped=skipped
        )

    def _record(
        self,
        session: DbSession,
        reminder: Reminder,
        day: dt.date,
        status: str,
        now: dt.datetime,
        amount: str | None = None,
        unit: str | None = None,
    ) -> None:
        session.add(
            Dose(
                patient_id=reminder.patient_id,
                drug=reminder.drug,
                amount=amount if amount is not None else reminder.dose_amount or "",
                unit=unit if unit is not None else reminder.dose_unit or "",
                given_on=day,
                status=status,
                recorded_at=now,
            )
        )
