"""The outbox: claiming what is due (the occurrence moves on and its message is written 'queued' in
one transaction), sending each message, confirming it 'sent' only once the transport accepted it,
retrying or giving up a failed send, and pausing the reminders of a chat that blocked the bot."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import bindparam, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.reminders.base import (
    _DELIVERIES,
    _OCCURRENCES,
    _REMINDERS,
    ACTIVE_STATES,
    ANSWERED_STATES,
    GIVE_UP_AFTER,
    LATE_AFTER,
    REMINDER_PURPOSES,
    RESEND_AFTER,
    RETRY_AFTER,
    Buttons,
    DeliveryError,
    local,
)
from bot.reminders.schedule import Schedule
from bot.storage.tables import Delivery, Occurrence, PatientRow, Reminder, User
from core.reminders import following_dose
from flows import reminders as words
from flows.replies import Button, Reply

log = logging.getLogger("hemadose.reminders")

_SET_STATE = update(_DELIVERIES).where(_DELIVERIES.c.key == bindparam("the_key")).values(state=bindparam("state"))
_SENT = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.key == bindparam("the_key"))
    .values(
        state="sent", sent_at=bindparam("sent_at"), message_id=bindparam("message_id"), attempts=bindparam("attempts")
    )
)


def _stored(reply: Reply) -> Buttons:
    return [[[button.label, button.data] for button in row] for row in reply.buttons]


class Outbox(Schedule):
    """The due-occurrence loop and the delivery of each message once."""

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
                    select(Occurrence, Reminder, User.time_zone, PatientRow.label)
                    .join(Reminder, Reminder.id == Occurrence.reminder_id)
                    .join(User, User.id == Reminder.user_id)
                    .join(PatientRow, PatientRow.id == Reminder.patient_id)
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
        following = following_dose(reminder.drug, occurrence.on_date, None)
        if following is not None:  # not fresh: after downtime, each passed day gets its own message
            await self._add_dose(session, reminder, following, zone, now)

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
