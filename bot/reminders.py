"""Reminders: durable schedules, the due-occurrence loop, and delivering each message once.

The database is the source of truth. Every reminder day is an `Occurrence` row whose `next_at`
(UTC) says when the scheduler must act on it next: send it, send it again once, or declare the
dose missed. `run_due` finds what is due with one range scan of that index, so neither its time
nor the process's memory grows with the number of occurrences scheduled.

A dose is *missed* only when its reminder reached the user and the deadline passed without Taken;
when no reminder of it was delivered before the deadline (the bot was down, the send failed) it is
*unknown* (RULES.md 6 "unconfirmed"): the user is asked whether it was taken, and the missed-dose
guidance follows only a No. A user who blocked the bot has their reminders paused ('blocked' until
they are told, on their next message, then 'paused').

Each message is a `Delivery` row with a key of its own ('<occurrence>:<purpose>'), written as
'queued' in the same transaction as the occurrence's new state, marked 'sending' just before the
send and 'sent' only after Telegram accepted it. Telegram has no idempotent send, so one window cannot be
closed: a crash after Telegram accepted a message and before 'sent' was written. At start-up such
a row is sent again with a note that it may repeat an earlier one. A failed send is retried later
(`retry`), or given up only on an answer that will never change (the user blocked the bot).
Local times come from the user's time zone through `zoneinfo`; every stored instant is UTC.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, delete, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage import Storage
from bot.storage.tables import Delivery, Dose, Occurrence, Patient, Regimen, Reminder, User
from core.missed import missed_dose_guidance
from core.models import DoseResponse, Drug
from core.reminders import INJECTED, RESULT_FIRST, following_dose, missed_after
from core.reminders import plan as plan_reminders
from flows import reminders as words
from flows.replies import Button, Reply, ScheduleReminders
from flows.steps import DRUG_NAMES

log = logging.getLogger("hemadose.reminders")

Clock = Callable[[], dt.datetime]  # aware "now"
Buttons = list[list[list[str]]]  # rows of [label, data], as stored

RESEND_AFTER = dt.timedelta(hours=3)  # a reminder not acknowledged is sent again once, this much later
SNOOZE = dt.timedelta(hours=1)
LATE_AFTER = dt.timedelta(minutes=15)  # sent later than this after its time: it says it is late
RETRY_AFTER = dt.timedelta(minutes=1)  # a send that failed (after the sender's own retries) is tried again
GIVE_UP_AFTER = 20  # failed rounds of a delivery before it is marked failed (about a day with back-off)
ACTIVE_STATES = ("scheduled", "sent", "snoozed")
ANSWERED_STATES = ("taken", "skipped", "missed", "unknown")
REMINDER_PURPOSES = ("r", "a", "z")  # the reminder itself (first, again, after a snooze): not 'm' or 'u'


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
    cast(Table, model.__table__) for model in (Delivery, Occurrence, Reminder, Patient)
)
_SET_STATE = update(_DELIVERIES).where(_DELIVERIES.c.key == bindparam("the_key")).values(state=bindparam("state"))
_SENT = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.key == bindparam("the_key"))
    .values(
        state="sent", sent_at=bindparam("sent_at"), message_id=bindparam("message_id"), attempts=bindparam("attempts")
    )
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


def _stored(reply: Reply) -> Buttons:
    return [[[button.label, button.data] for button in row] for row in reply.buttons]


class Reminders:
    """Schedules, acknowledgements and the delivery loop, over the shared storage."""

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
        self._recovered = False
        self._lock = asyncio.Lock()

    def now(self) -> dt.datetime:
        return _naive(self.clock())

    # --- setting up -----------------------------------------------------------------------------

    async def schedule(
        self, session: AsyncSession, user_id: int, chat_key: str, effect: ScheduleReminders, zone: str
    ) -> None:
        """The patient's reminders from a saved recommendation; earlier ones of the patient stop."""
        patient_id = await session.scalar(
            select(_PATIENTS.c.id).where(_PATIENTS.c.user_id == user_id, _PATIENTS.c.label == effect.patient_label)
        )
        assert patient_id is not None, "reminders are offered only after the consultation is saved"
        await self._stop_patient(session, patient_id)
        response = DoseResponse.model_validate(effect.response)
        drug: Drug = effect.request["drug"]
        now = self.now()
        at = effect.local_time
        reminder = Reminder(
            user_id=user_id,
            patient_id=patient_id,
            chat_key=chat_key,
            drug=drug,
            dose_amount=format(Decimal(str(response.dose.amount)).normalize(), "f") if response.dose else None,
            dose_unit=response.dose.unit if response.dose else None,
            dose_text=words.dose_instruction(drug, effect.response),
            lab_text=words.lab_words(effect.response),
            local_time=at.strftime("%H:%M"),
            status="active",
            created_at=now,
        )
        session.add(reminder)
        await session.flush()
        for item in plan_reminders(drug, response, local(now, zone).replace(tzinfo=None), at):
            session.add(self._occurrence(reminder, item.kind, item.on, item.decided, zone, now))

    def _occurrence(
        self,
        reminder: Reminder,
        kind: str,
        on: dt.date,
        decided: bool,
        zone: str,
        now: dt.datetime,
        fresh: bool = True,
    ) -> Occurrence:
        """`fresh`: the user set it up (or resumed it) just now, so a time already past today is due
        at once, not late. The next day of a running schedule is not fresh: after downtime it is late.

        `dose_on` holds the day of the dose whose decided amount the row restates (a dose: its day; a
        heads-up: the next day); NULL when the amount awaits a new result (RULES.md 6a) and on a lab."""
        at = dt.time.fromisoformat(reminder.local_time)
        due = max(utc_at(on, at, zone), now) if fresh else utc_at(on, at, zone)
        deadline = None
        if kind == "dose":
            day, by = missed_after(reminder.drug, on, at)  # type: ignore[arg-type]
            deadline = utc_at(day, by, zone)
        return Occurrence(
            reminder_id=reminder.id,
            kind=kind,
            on_date=on,
            dose_on=(on + dt.timedelta(days=1) if kind == "heads_up" else on) if decided and kind != "lab" else None,
            due_at=due,
            deadline_at=deadline,
            state="scheduled",
            sends=0,
            next_at=due,
        )

    async def _add_dose(
        self, session: AsyncSession, reminder: Reminder, day: dt.date, zone: str, now: dt.datetime, fresh: bool = False
    ) -> Occurrence | None:
        """The next dose day of a running schedule, with its heads-up for an injection.

        None for a stopped reminder. A dose already open on or after `day` is the next one (never
        two). A paused reminder's occurrence waits (no `next_at`) until it is resumed. `fresh` (set
        up or resumed by the user just now): days whose deadline has passed are skipped, not missed.
        """
        if reminder.status == "stopped":
            return None
        drug: Drug = reminder.drug  # type: ignore[assignment]
        open_dose = await session.scalar(
            select(Occurrence)
            .where(
                Occurrence.reminder_id == reminder.id,
                Occurrence.kind == "dose",
                Occurrence.state.in_(ACTIVE_STATES),
                Occurrence.on_date >= day,
            )
            .limit(1)
        )
        if open_dose is not None:
            return open_dose
        if fresh:
            at = dt.time.fromisoformat(reminder.local_time)
            while True:
                by_day, by_time = missed_after(drug, day, at)
                following = following_dose(drug, day, None)
                if utc_at(by_day, by_time, zone) > now or following is None:
                    break
                day = following
        added = []
        decided = drug not in RESULT_FIRST  # a later romiplostim or luspatercept dose awaits its result
        if drug in INJECTED and utc_at(day - dt.timedelta(days=1), dt.time(23, 59), zone) > now:
            added.append(self._occurrence(reminder, "heads_up", day - dt.timedelta(days=1), decided, zone, now, fresh))
        occurrence = self._occurrence(reminder, "dose", day, decided, zone, now, fresh)
        added.append(occurrence)
        for item in added:
            if reminder.status != "active":
                item.next_at = None
            session.add(item)
        return occurrence

    async def _stop_patient(self, session: AsyncSession, patient_id: int) -> None:
        """Core statements (no ORM session synchronisation, which cost a read each): callers stop a
        patient's reminders last, with none of these rows loaded, or return at once after it; changes
        already made to loaded rows are written first, so these statements have the last word."""
        await session.flush()
        ids = select(_REMINDERS.c.id).where(_REMINDERS.c.patient_id == patient_id)
        await session.execute(
            update(_OCCURRENCES)
            .where(_OCCURRENCES.c.reminder_id.in_(ids), _OCCURRENCES.c.state.in_(ACTIVE_STATES))
            .values(state="cancelled", next_at=None)
        )
        await session.execute(update(_REMINDERS).where(_REMINDERS.c.patient_id == patient_id).values(status="stopped"))

    async def rezone(self, session: AsyncSession, user_id: int, zone: str) -> None:
        """A new time zone: reminders not yet sent move to the same local time in it."""
        now = self.now()
        rows = await session.execute(
            select(Occurrence, Reminder)
            .join(Reminder, Reminder.id == Occurrence.reminder_id)
            .where(Reminder.user_id == user_id, Occurrence.state == "scheduled")
        )
        for occurrence, reminder in rows:
            self._move(occurrence, reminder, zone, now)

    def _move(self, occurrence: Occurrence, reminder: Reminder, zone: str, now: dt.datetime) -> None:
        """An unsent occurrence to the reminder's (new) local time in `zone`; left where it was if in
        the new time its day would already be over (it would count as missed without ever being sent)."""
        decided = occurrence.dose_on is not None
        moved = self._occurrence(reminder, occurrence.kind, occurrence.on_date, decided, zone, now)
        if moved.deadline_at is not None and moved.deadline_at <= now:
            return
        occurrence.due_at, occurrence.deadline_at = moved.due_at, moved.deadline_at
        if reminder.status == "active":
            occurrence.next_at = moved.next_at

    # --- the loop -------------------------------------------------------------------------------

    def _ours(self, chat_key: Any) -> Any:
        """The chats this process delivers to: a transport prefix ('tg:') or one chat exactly."""
        if not self.chats:
            return true()
        if self.chats.endswith(":"):
            return chat_key.startswith(self.chats, autoescape=True)
        return chat_key == self.chats

    async def next_wakeup(self) -> dt.datetime | None:
        """The earliest instant (UTC, naive) at which something of this process's chats will be due."""
        async with self.storage.session() as session:
            occurrence = await session.scalar(
                select(func.min(Occurrence.next_at))
                .join(Reminder, Reminder.id == Occurrence.reminder_id)
                .where(self._ours(Reminder.chat_key))
            )
            retry = await session.scalar(
                select(func.min(Delivery.next_try_at)).where(Delivery.state == "retry", self._ours(Delivery.chat_key))
            )
        moments = [moment for moment in (occurrence, retry) if moment is not None]
        return min(moments) if moments else None

    async def run_due(self) -> int:
        """Act on everything due now: first what a crash left in flight, then retries, then new
        sends. Returns the number of messages delivered."""
        async with self._lock:
            try:
                delivered = 0
                if not self._recovered:
                    delivered += await self._send_pending("sending", note=True)
                    delivered += await self._send_pending("queued", note=False)
                    self._recovered = True
                delivered += await self._send_pending("retry", note=False)
                while True:
                    keys = await self._claim_due()
                    if not keys:
                        return delivered
                    delivered += await self._send(keys)
            except BaseException:
                # A run broken off may leave messages 'sending': the next run treats them as a restart would.
                self._recovered = False
                raise

    async def _claim_due(self) -> list[str]:
        """One transaction: the due occurrences move on and their messages are written as 'sending'."""
        now = self.now()
        async with self.storage.session() as session, session.begin():
            rows = (
                await session.execute(
                    select(Occurrence, Reminder, User.time_zone, Patient.label)
                    .join(Reminder, Reminder.id == Occurrence.reminder_id)
                    .join(User, User.id == Reminder.user_id)
                    .join(Patient, Patient.id == Reminder.patient_id)
                    .where(Occurrence.next_at <= now, self._ours(Reminder.chat_key))
                    .order_by(Occurrence.next_at)
                    .limit(self.batch)
                )
            ).all()
            messages: list[tuple[str, Occurrence, Reminder, Reply]] = []
            reached = await self._reached(session, [row[0] for row in rows], now)
            for occurrence, reminder, zone, label in rows:
                zone = zone or self.default_time_zone
                message = await self._advance(session, occurrence, reminder, zone, label, now, reached)
                if message is not None:
                    purpose, reply = message
                    messages.append((f"{occurrence.id}:{purpose}", occurrence, reminder, reply))
            # Never sent twice, never blocking: a key already written is logged and left out (one read).
            written: set[str] = set()
            if messages:
                wanted = [key for key, *_ in messages]
                written = set(await session.scalars(select(Delivery.key).where(Delivery.key.in_(wanted))))
            keys = []
            for key, occurrence, reminder, reply in messages:
                if key in written:
                    log.error("delivery %s already exists; not sent again", key)
                    continue
                session.add(
                    Delivery(
                        key=key,
                        occurrence_id=occurrence.id,
                        chat_key=reminder.chat_key,
                        text=reply.text,
                        buttons=_stored(reply),
                        state="queued",
                        attempts=0,
                        created_at=now,
                    )
                )
                keys.append(key)
            return keys

    async def _reached(self, session: AsyncSession, due: Sequence[Occurrence], now: dt.datetime) -> set[int]:
        """Of the doses whose deadline has come, those whose reminder reached the user before it
        (a delivery 'sent' before the deadline): one read for the batch."""
        ids = [o.id for o in due if o.deadline_at is not None and now >= o.deadline_at and o.state in ACTIVE_STATES]
        if not ids:
            return set()
        rows = await session.execute(
            select(Delivery.occurrence_id, Delivery.key, Delivery.sent_at).where(
                Delivery.occurrence_id.in_(ids), Delivery.state == "sent"
            )
        )
        deadlines = {o.id: o.deadline_at for o in due}
        return {
            occurrence_id
            for occurrence_id, key, sent_at in rows
            if key.split(":")[1][:1] in REMINDER_PURPOSES
            and sent_at is not None
            and sent_at < cast(dt.datetime, deadlines[occurrence_id])
        }

    async def _advance(
        self,
        session: AsyncSession,
        occurrence: Occurrence,
        reminder: Reminder,
        zone: str,
        label: str,
        now: dt.datetime,
        reached: set[int],
    ) -> tuple[str, Reply] | None:
        """The occurrence's next state, and the message that goes with it (purpose, text)."""
        deadline = occurrence.deadline_at
        if deadline is not None and now >= deadline and occurrence.state in ACTIVE_STATES:
            if occurrence.id in reached:
                return await self._missed(session, occurrence, reminder, zone, label, now)
            return await self._unconfirmed(session, occurrence, reminder, zone, label, now)
        if occurrence.state in ("scheduled", "snoozed"):
            late = None
            if occurrence.state == "scheduled" and now - occurrence.due_at > LATE_AFTER:
                late = f"{local(occurrence.due_at, zone):%H:%M on %a %Y-%m-%d}"
            purpose = "r" if occurrence.state == "scheduled" else f"z{now:%Y%m%d%H%M%S%f}"
            first = occurrence.state == "scheduled"
            occurrence.sends += 1 if first else 0
            occurrence.state = "sent"
            if occurrence.kind == "heads_up":
                occurrence.state, occurrence.next_at = "done", None
            elif first:
                again = now + RESEND_AFTER
                occurrence.next_at = again if deadline is None or again < deadline else deadline
            else:
                occurrence.next_at = deadline
            return purpose, self._reminder_reply(occurrence, reminder, label, late_since=late)
        if occurrence.state == "sent" and occurrence.sends == 1:
            occurrence.sends = 2
            occurrence.next_at = deadline
            return "a", self._reminder_reply(occurrence, reminder, label, again=True)
        occurrence.next_at = None  # sent twice and not a dose: nothing more to do
        return None

    def _reminder_reply(
        self, occurrence: Occurrence, reminder: Reminder, label: str, again: bool = False, late_since: str | None = None
    ) -> Reply:
        return words.reminder_message(
            occurrence.id,
            occurrence.kind,
            reminder.drug,
            label,
            reminder.dose_text,
            reminder.lab_text,
            occurrence.on_date,
            decided=occurrence.dose_on is not None,
            again=again,
            late_since=late_since,
        )

    async def _missed(
        self,
        session: AsyncSession,
        occurrence: Occurrence,
        reminder: Reminder,
        zone: str,
        label: str,
        now: dt.datetime,
    ) -> tuple[str, Reply]:
        """Reminded and not confirmed by its deadline: recorded as missed, the drug's own rule sent, the
        schedule moves on."""
        await self._move_on(session, occurrence, reminder, "missed", zone, now)
        self._record(session, reminder, occurrence.on_date, "missed", now)
        return "m", await self._guidance(session, occurrence, reminder, label, local(now, zone).date())

    async def _unconfirmed(
        self,
        session: AsyncSession,
        occurrence: Occurrence,
        reminder: Reminder,
        zone: str,
        label: str,
        now: dt.datetime,
    ) -> tuple[str, Reply]:
        """RULES.md 6: its reminder never reached the user before the deadline, so the dose is not
        declared missed (it may have been taken): the user is asked. The schedule moves on as after a
        missed dose; nothing is recorded until the answer."""
        await self._move_on(session, occurrence, reminder, "unknown", zone, now)
        due = f"{local(occurrence.due_at, zone):%H:%M on %a %Y-%m-%d}"
        return "u", words.unconfirmed_message(occurrence.id, reminder.drug, label, occurrence.on_date, due)

    async def _move_on(
        self, session: AsyncSession, occurrence: Occurrence, reminder: Reminder, state: str, zone: str, now: dt.datetime
    ) -> None:
        occurrence.state, occurrence.next_at, occurrence.acted_at = state, None, now
        following = following_dose(reminder.drug, occurrence.on_date, None)  # type: ignore[arg-type]
        if following is not None:  # not fresh: after downtime, each passed day gets its own message
            await self._add_dose(session, reminder, following, zone, now)

    async def _guidance(
        self,
        session: AsyncSession,
        occurrence: Occurrence,
        reminder: Reminder,
        label: str,
        today: dt.date,
        skipped: bool = False,
    ) -> Reply:
        """The drug's missed-dose rule for this dose (a lusutrombopag course's last day ends it)."""
        drug: Drug = reminder.drug  # type: ignore[assignment]
        last = False
        if drug == "lusutrombopag":
            later = await session.scalar(
                select(func.count())
                .select_from(Occurrence)
                .where(
                    Occurrence.reminder_id == reminder.id,
                    Occurrence.kind == "dose",
                    Occurrence.on_date > occurrence.on_date,
                    Occurrence.state != "cancelled",
                )
            )
            last = not later
        guidance = missed_dose_guidance(drug, occurrence.on_date, today, last_of_course=last)
        decided = occurrence.dose_on is not None
        return words.missed_message(
            occurrence.id, label, occurrence.on_date, guidance, reminder.dose_text, decided, skipped=skipped
        )

    async def _send_pending(self, state: str, note: bool) -> int:
        """Deliveries a broken-off run left 'sending' (note: may repeat) or 'queued', or waiting for a retry."""
        now = self.now()
        async with self.storage.session() as session:
            query = select(Delivery.key).where(Delivery.state == state, self._ours(Delivery.chat_key))
            if state == "retry":
                query = query.where(Delivery.next_try_at <= now)
            keys = list(await session.scalars(query.order_by(Delivery.created_at).limit(self.batch)))
        return await self._send(keys, note=note) if keys else 0

    async def _send(self, keys: Sequence[str], note: bool = False) -> int:
        """Send each message, confirming each in its own transaction as soon as Telegram accepted it."""
        if self.sender is None:
            return 0
        async with self.storage.session() as session:
            rows = (
                await session.execute(
                    select(Delivery, Occurrence.state, Occurrence.kind)
                    .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
                    .where(Delivery.key.in_(keys))
                )
            ).all()
        order = {key: number for number, key in enumerate(keys)}
        delivered = 0
        for delivery, occurrence_state, kind in sorted(rows, key=lambda row: order[row[0].key]):
            if _outdated(delivery.key, occurrence_state, kind):
                await self._mark(delivery.key, "dropped")
                continue
            text = f"{words.MAY_REPEAT}\n{delivery.text}" if note else delivery.text
            await self._mark(delivery.key, "sending")
            try:
                message_id = await self.sender(delivery.chat_key, text, delivery.buttons)
            except DeliveryError as error:
                await self._failed(delivery, error)
                continue
            await self._confirm(delivery, message_id)
            delivered += 1
        return delivered

    async def _mark(self, key: str, state: str) -> None:
        async with self.storage.engine.begin() as connection:
            await connection.execute(_SET_STATE, {"the_key": key, "state": state})

    async def _confirm(self, delivery: Delivery, message_id: int | None) -> None:
        """Telegram accepted it: 'sent', in a transaction of its own (a crash before this line is the
        one window that re-sends, with the may-repeat note)."""
        values = {"the_key": delivery.key, "sent_at": self.now(), "message_id": message_id}
        async with self.storage.engine.begin() as connection:
            await connection.execute(_SENT, values | {"attempts": delivery.attempts + 1})

    async def _failed(self, delivery: Delivery, error: DeliveryError) -> None:
        attempts = delivery.attempts + 1
        give_up = error.permanent or attempts >= GIVE_UP_AFTER
        wait = RETRY_AFTER * min(2 ** (attempts - 1), 60)
        log.warning("delivery %s failed (%s)%s", delivery.key, error, ", giving up" if give_up else "")
        async with self.storage.session() as session, session.begin():
            if error.blocked:  # never deliverable again: the chat's reminders pause (told on the next message)
                blocked = select(_REMINDERS.c.id).where(
                    _REMINDERS.c.chat_key == delivery.chat_key, _REMINDERS.c.status == "active"
                )
                await session.execute(
                    update(_OCCURRENCES)
                    .where(_OCCURRENCES.c.reminder_id.in_(blocked), _OCCURRENCES.c.state.in_(ACTIVE_STATES))
                    .values(next_at=None)
                )
                await session.execute(
                    update(_REMINDERS)
                    .where(_REMINDERS.c.chat_key == delivery.chat_key, _REMINDERS.c.status == "active")
                    .values(status="blocked")
                )
            await session.execute(
                update(Delivery)
                .where(Delivery.key == delivery.key)
                .values(
                    state="failed" if give_up else "retry",
                    attempts=attempts,
                    next_try_at=None if give_up else self.now() + wait,
                )
            )

    # --- the user's answers ---------------------------------------------------------------------

    async def answer(self, session: AsyncSession, user_id: int, data: str, zone: str) -> list[Reply]:
        """A reminder's button, `oc:<action>:<occurrence>` or `oc:d:<occurrence>:<YYYYMMDD>`."""
        parts = data.split(":")
        day: dt.date | None = None
        if len(parts) == 4 and len(parts[3]) == 8 and parts[3].isascii() and parts[3].isdigit():
            try:
                day = dt.date(int(parts[3][:4]), int(parts[3][4:6]), int(parts[3][6:]))
            except ValueError:
                day = None
        numbered = len(parts) > 2 and parts[2].isascii() and parts[2].isdigit()
        if not numbered or len(parts) not in (3, 4) or (len(parts) == 4) != (day is not None):
            return [Reply("I did not understand that button. /reminders lists your reminders.")]
        return await self.acknowledge(session, user_id, parts[1], int(parts[2]), zone, day)

    async def acknowledge(
        self,
        session: AsyncSession,
        user_id: int,
        action: str,
        occurrence_id: int,
        zone: str,
        day: dt.date | None = None,
    ) -> list[Reply]:
        """Taken, Skip, Snooze, Noted, taken on a day (a late Taken), the Yes / No of an unconfirmed
        dose, or a late dose given after a missed one. An action that does not belong to the
        reminder's kind (a forged or stale button) changes nothing."""
        found = (
            await session.execute(
                select(Occurrence, Reminder, Patient.label)
                .join(Reminder, Reminder.id == Occurrence.reminder_id)
                .join(Patient, Patient.id == Reminder.patient_id)
                .where(Occurrence.id == occurrence_id, Reminder.user_id == user_id)
            )
        ).first()
        if found is None:
            return [Reply("That reminder is not one of yours, or no longer exists. /reminders lists yours.")]
        occurrence, reminder, label = found
        now = self.now()
        today = local(now, zone).date()
        drug: Drug = reminder.drug  # type: ignore[assignment]
        on, state = occurrence.on_date, occurrence.state
        if action not in words.ACTIONS["dose"] | words.ACTIONS["lab"] or (action == words.ON_DAY) != (day is not None):
            return [Reply("I did not understand that button. /reminders lists your reminders.")]
        if action not in words.ACTIONS.get(occurrence.kind, frozenset()):
            return [Reply(self._not_its_kind(occurrence, reminder, label))]
        if state == "cancelled":
            return [Reply(f"That reminder for {label} was stopped; nothing recorded.")]
        if action == words.NOTED:
            occurrence.state, occurrence.next_at, occurrence.acted_at = "done", None, now
            return [Reply(f"Noted: {reminder.lab_text} for {label} on {on:%a %Y-%m-%d}.")]
        if state == "taken" or (state == "skipped" and action != words.GIVEN):
            return [Reply(f"Already recorded for {label}: dose of {on} {state}.")]
        if state == "unknown":  # RULES.md 6: never declared missed without the user's No
            if action in (words.NO, words.SKIP):
                occurrence.state, occurrence.acted_at = "missed", now
                self._record(session, reminder, on, "missed", now)
                return [await self._guidance(session, occurrence, reminder, label, today)]
            if action == words.YES:
                return await self._taken(session, occurrence, reminder, label, on, zone, now, confirmed_late=True)
            if action in (words.SNOOZE, words.GIVEN):  # the question again
                due = f"{local(occurrence.due_at, zone):%H:%M on %a %Y-%m-%d}"
                return [words.unconfirmed_message(occurrence.id, drug, label, on, due)]
        elif action in (words.YES, words.NO):
            return [Reply(f"Already recorded for {label}: dose of {on} {state}.")]
        if action == words.SNOOZE:
            if reminder.status != "active":
                return [Reply(f"The reminders for {label} are {reminder.status}; nothing to snooze.")]
            if state == "missed":
                return [Reply(f"That dose is already recorded as missed; see the guidance above for {label}.")]
            again = now + SNOOZE
            if occurrence.deadline_at is not None and again >= occurrence.deadline_at:
                by = local(occurrence.deadline_at, zone)
                return [Reply(f"Too late to snooze: confirm the dose before {by:%H:%M}, or it is recorded as missed.")]
            occurrence.state, occurrence.next_at = "snoozed", again
            return [Reply(f"Snoozed: I will remind you again at {local(again, zone):%H:%M}.")]
        if action == words.SKIP:
            if state == "missed":
                return [Reply(f"That dose is already recorded as missed for {label}.")]
            occurrence.state, occurrence.next_at, occurrence.acted_at = "skipped", None, now
            self._record(session, reminder, on, "skipped", now)
            following = following_dose(drug, on, None)
            if following is not None:
                await self._add_dose(session, reminder, following, zone, now)
            return [await self._guidance(session, occurrence, reminder, label, today, skipped=True)]
        if action == words.GIVEN:  # from the missed- or skipped-dose message: given today
            if state not in ("missed", "skipped"):
                return [Reply(f"The dose of {on} for {label} is not recorded as missed; confirm it with Taken.")]
            guidance = missed_dose_guidance(drug, on, today)
            if not guidance.give_missed_dose:
                return [Reply(f"{guidance.text}\nNothing recorded: the missed dose is not made up.")]
            return await self._taken(session, occurrence, reminder, label, today, zone, now, confirmed_late=False)
        # Taken, or taken on a chosen day (RULES.md 6, late confirmation: recorded on the day it was taken).
        days = self._possible_days(drug, on, today)
        if action == words.ON_DAY:
            assert day is not None
            if day not in days:
                shown = " or ".join(f"{d:%a %Y-%m-%d}" for d in days) if days else "no day yet"
                return [Reply(f"The dose of {on} for {label} can be recorded on {shown}; nothing recorded.")]
            return await self._taken(session, occurrence, reminder, label, day, zone, now, confirmed_late=True)
        if not days:  # a reminder pressed before its day (a heads-up's dose, the clock of another zone)
            return [Reply(f"The dose of {on:%a %Y-%m-%d} for {label} is not due yet; nothing recorded.")]
        if len(days) == 1:
            return await self._taken(session, occurrence, reminder, label, days[0], zone, now, confirmed_late=True)
        return [words.day_question(occurrence.id, drug, label, on, days)]

    @staticmethod
    def _possible_days(drug: Drug, on: dt.date, today: dt.date) -> list[dt.date]:
        """The days a dose due on `on` can have been taken on, as of `today`.

        A tablet belongs to its day (a tablet on a later day is that day's own dose); an injection
        may have been given on its day or any day since (the last week shown, and its own day)."""
        if today < on:
            return []
        if drug not in INJECTED:
            return [on]
        days = [on + dt.timedelta(days=n) for n in range((today - on).days + 1)]
        return days if len(days) <= 7 else [on, *days[-6:]]

    @staticmethod
    def _not_its_kind(occurrence: Occurrence, reminder: Reminder, label: str) -> str:
        on = f"{occurrence.on_date:%a %Y-%m-%d}"
        if occurrence.kind == "lab":
            what = (
                f"the blood-test reminder for {label} ({reminder.lab_text} due {on}); "
                "a dose is confirmed on its dose reminder"
            )
        elif occurrence.kind == "heads_up":
            what = f"a heads-up for {label}; the dose is confirmed on its dose reminder"
        else:
            what = f"the dose reminder for {label} of {on}; a blood test is noted on its own reminder"
        return f"That button does not belong to this reminder: it is {what}. Nothing recorded."

    async def _taken(
        self,
        session: AsyncSession,
        occurrence: Occurrence,
        reminder: Reminder,
        label: str,
        day: dt.date,
        zone: str,
        now: dt.datetime,
        confirmed_late: bool,
    ) -> list[Reply]:
        """The dose recorded as given on `day`; the schedule goes on from it.

        `confirmed_late`: the user says it was taken (Taken, Yes, a chosen day), so a missed record
        of its day is removed (RULES.md 6: taken late is not missed). Given late after the
        missed-dose guidance ('Given today'), the missed record stays beside the late dose."""
        drug: Drug = reminder.drug  # type: ignore[assignment]
        name = DRUG_NAMES.get(drug, drug)
        on = occurrence.on_date
        today = local(now, zone).date()
        already = await session.scalar(
            select(func.count())
            .select_from(Dose)
            .where(
                Dose.patient_id == reminder.patient_id,
                Dose.drug == drug,
                Dose.given_on == day,
                Dose.status == "given",
            )
        )
        moved_on = occurrence.state in ("missed", "skipped", "unknown")  # the schedule moved on then
        occurrence.state, occurrence.next_at, occurrence.acted_at = "taken", None, now
        if already:
            if not moved_on:  # the schedule goes on from this day
                following = following_dose(drug, on, None)
                if following is not None:
                    await self._add_dose(session, reminder, following, zone, now)
            when = "today" if day == today else f"on {day:%a %Y-%m-%d}"
            return [Reply(f"A {name} dose for {label} is already recorded {when}. Never two doses in one day.")]
        if moved_on and (confirmed_late or day == on):  # taken after all: not missed
            await session.execute(
                delete(Dose).where(
                    Dose.patient_id == reminder.patient_id,
                    Dose.drug == drug,
                    Dose.given_on == on,
                    Dose.status.in_(("missed", "skipped")),
                )
            )
        amount, unit = await self._amount(session, reminder, occurrence)
        self._record(session, reminder, day, "given", now, amount, unit)
        lines = [f"Recorded: {label} {name} {amount} {unit} given on {day:%a %Y-%m-%d}.".replace("  ", " ")]
        following = following_dose(drug, on, day)
        if following is not None and following <= today:
            following = today + dt.timedelta(days=1)
        scheduled_next = None
        if moved_on and following is not None and drug != "hetrombopag":
            scheduled_next = await session.scalar(
                select(func.min(Occurrence.on_date)).where(
                    Occurrence.reminder_id == reminder.id,
                    Occurrence.kind == "dose",
                    Occurrence.state.in_(ACTIVE_STATES),
                    Occurrence.on_date > on,
                )
            )
        if moved_on and following is not None and drug != "hetrombopag" and scheduled_next != following:
            # The schedule moved on when the dose was missed, skipped or left unconfirmed; given on
            # another day, the next dose moves with it (romiplostim: a week after the injection,
            # RULES.md 6 "given late"; luspatercept: 21 days).
            await session.execute(
                update(Occurrence)
                .where(
                    Occurrence.reminder_id == reminder.id,
                    Occurrence.kind.in_(("dose", "heads_up")),
                    Occurrence.state.in_(ACTIVE_STATES),
                    Occurrence.on_date > on,
                )
                .values(state="cancelled", next_at=None)
            )
        if following is not None and (not moved_on or drug != "hetrombopag"):
            added = await self._add_dose(session, reminder, following, zone, now)
            if added is None:
                lines.append(f"The reminders for {label} are stopped: no next one is set.")
            else:
                lines.append(f"Next dose reminder: {added.on_date:%a %Y-%m-%d} at {reminder.local_time}.")
                if reminder.status != "active":
                    lines.append("(Reminders are paused: it comes once they are resumed.)")
            if drug == "luspatercept":
                lines.append("At least 21 days between doses (RULES.md section 6).")
        return [Reply("\n".join(lines))]

    async def _amount(self, session: AsyncSession, reminder: Reminder, occurrence: Occurrence) -> tuple[str, str]:
        """The dose given: the decided one, or for a dose that awaited a new result (RULES.md 6a) the
        patient's regimen as now recorded (a follow-up may have changed it)."""
        decided = reminder.dose_amount or "", reminder.dose_unit or ""
        if occurrence.dose_on is not None:
            return decided
        regimen = await session.scalar(select(Regimen).where(Regimen.patient_id == reminder.patient_id))
        if regimen is None or regimen.drug != reminder.drug or regimen.on_hold or not regimen.dose_amount:
            return decided
        return regimen.dose_amount, regimen.dose_unit

    def _record(
        self,
        session: AsyncSession,
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

    async def undelivered_notice(self, session: AsyncSession, user_id: int) -> list[Reply]:
        """Once, on the user's next message after their reminders paused because sends were refused
        (the bot was blocked): they are told, and the reminders stay paused until resumed."""
        paused = await session.execute(
            update(_REMINDERS)
            .where(_REMINDERS.c.user_id == user_id, _REMINDERS.c.status == "blocked")
            .values(status="paused")
            .returning(_REMINDERS.c.id)
        )
        return [Reply(words.PAUSED_NOTICE)] if paused.first() is not None else []

    # --- /reminders -----------------------------------------------------------------------------

    async def listing(self, session: AsyncSession, user_id: int, zone: str) -> Reply:
        rows = (
            await session.execute(
                select(Reminder, Patient.label)
                .join(Patient, Patient.id == Reminder.patient_id)
                .where(Reminder.user_id == user_id, Reminder.status != "stopped")
                .order_by(Patient.label)
            )
        ).all()
        lines, buttons = [f"Your reminders ({zone}):"], []
        today = local(self.now(), zone).date()
        for reminder, label in rows:
            upcoming = await session.scalar(
                select(Occurrence)
                .where(
                    Occurrence.reminder_id == reminder.id,
                    Occurrence.state.in_(ACTIVE_STATES),
                    # Today on, or still open from yesterday (an injection is confirmable the day after).
                    or_(Occurrence.on_date >= today, Occurrence.next_at.is_not(None)),
                )
                .order_by(Occurrence.on_date)
                .limit(1)
            )
            name = DRUG_NAMES.get(reminder.drug, reminder.drug)
            dose = reminder.dose_text
            if reminder.drug in RESULT_FIRST and dose:  # each dose awaits a new result (RULES.md 6a)
                dose = f"last decided {dose}"
            shown = (
                f"next: {upcoming.kind.replace('_', '-')} {upcoming.on_date:%a %Y-%m-%d}" if upcoming else "none due"
            )
            lines.append(f"• {label} · {name} {dose} · {reminder.local_time} · {reminder.status} · {shown}")
            toggle = (
                Button(f"Resume {label}", f"rm:r:{reminder.id}")
                if reminder.status == "paused"
                else (Button(f"Pause {label}", f"rm:p:{reminder.id}"))
            )
            buttons.append(
                (toggle, Button(f"Time {label}", f"rm:t:{reminder.id}"), Button(f"Stop {label}", f"rm:x:{reminder.id}"))
            )
        if len(lines) == 1:
            return Reply("You have no reminders. Set them with Set reminders after saving a recommendation.")
        return Reply("\n".join(lines), tuple(buttons))

    async def manage(self, session: AsyncSession, user_id: int, data: str, zone: str) -> Reply:
        """rm:<p|r|x|t>:<id> and rm:a:<id>:<HHMM> (pause, resume, stop, ask the time, set the time)."""
        parts = data.split(":")
        numbered = len(parts) > 2 and parts[2].isascii() and parts[2].isdigit()
        action, reminder_id = parts[1], int(parts[2]) if numbered else -1
        found = (
            await session.execute(
                select(Reminder, Patient.label)
                .join(Patient, Patient.id == Reminder.patient_id)
                .where(Reminder.id == reminder_id, Reminder.user_id == user_id)
            )
        ).first()
        if found is None:
            return Reply("That reminder is not one of yours, or no longer exists. /reminders lists yours.")
        reminder, label = found
        if reminder.status == "stopped":
            return Reply(f"The reminders for {label} are stopped. Set new ones after a consultation.")
        now = self.now()
        pending = select(Occurrence).where(Occurrence.reminder_id == reminder.id, Occurrence.state.in_(ACTIVE_STATES))
        if action == "p":
            reminder.status = "paused"
            await session.execute(
                update(Occurrence)
                .where(Occurrence.reminder_id == reminder.id, Occurrence.state.in_(ACTIVE_STATES))
                .values(next_at=None)
            )
            return Reply(f"Reminders for {label} paused. /reminders to resume them.")
        if action == "r":
            if reminder.status not in ("paused", "blocked"):
                return Reply(f"The reminders for {label} are already on.")
            reminder.status = "active"
            for occurrence in await session.scalars(pending):
                await self._resume(session, occurrence, reminder, zone, now)
            return Reply(
                f"Reminders for {label} resumed. Days that passed while paused are not reminded; "
                "a dose still open today is."
            )
        if action == "x":
            await self._stop_patient(session, reminder.patient_id)
            return Reply(f"Reminders for {label} stopped.")
        if action == "t":
            choices = [Button(choice, f"rm:a:{reminder.id}:{choice.replace(':', '')}") for choice in words.TIME_CHOICES]
            return Reply(
                f"New local time for {label}'s reminders ({zone})?",
                tuple(tuple(choices[i : i + 3]) for i in range(0, len(choices), 3)),
            )
        hhmm = parts[3] if len(parts) == 4 else ""
        if action == "a" and len(hhmm) == 4 and hhmm.isascii() and hhmm.isdigit() and hhmm < "2400" and hhmm[2] < "6":
            at = dt.time(int(hhmm[:2]), int(hhmm[2:]))
            reminder.local_time = at.strftime("%H:%M")
            for occurrence in await session.scalars(pending.where(Occurrence.state == "scheduled")):
                self._move(occurrence, reminder, zone, now)
            return Reply(f"Reminders for {label} now at {reminder.local_time} ({zone}).")
        return Reply("I did not understand that reminder button. /reminders lists yours.")

    async def _resume(
        self, session: AsyncSession, occurrence: Occurrence, reminder: Reminder, zone: str, now: dt.datetime
    ) -> None:
        """Back on: a day that passed while paused is dropped (with its successor scheduled), else it is due."""
        if occurrence.due_at >= now or (occurrence.deadline_at is not None and occurrence.deadline_at > now):
            if occurrence.state in ("scheduled", "snoozed"):
                # Still open: due now at the latest, and not "late" (the user paused it; no downtime).
                if occurrence.state == "scheduled":
                    occurrence.due_at = max(occurrence.due_at, now)
                occurrence.next_at = max(occurrence.due_at, now)
            else:
                occurrence.next_at = occurrence.deadline_at
            return
        occurrence.state, occurrence.next_at = "cancelled", None
        if occurrence.kind == "dose":
            today = local(now, zone).date()
            day = following_dose(reminder.drug, occurrence.on_date, None)  # type: ignore[arg-type]
            if day is None and reminder.drug == "luspatercept":
                day = today  # still owed (section 6: as soon as possible): reminded today
            if day is not None:
                await self._add_dose(session, reminder, max(day, today), zone, now, fresh=True)


def _outdated(key: str, occurrence_state: str, kind: str) -> bool:
    """A queued or retried message its occurrence no longer wants: stopped, or a reminder already
    answered (a missed-dose message, purpose 'm', is always sent)."""
    if occurrence_state == "cancelled":
        return True
    if key.endswith((":m", ":u")):  # missed-dose guidance, the unconfirmed question
        return False
    return occurrence_state in ANSWERED_STATES or (kind == "lab" and occurrence_state == "done")


def stored_buttons(buttons: Any) -> tuple[tuple[Button, ...], ...]:
    """Rows of [label, data] as stored back into buttons."""
    return tuple(tuple(Button(label, data) for label, data in row) for row in buttons)
