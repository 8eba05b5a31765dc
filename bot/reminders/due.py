"""What a due occurrence becomes: the reminder (first, again, after a snooze, late), a heads-up or lab
reminder done, or, past its deadline, missed (the drug's own rule of RULES.md 6) or unconfirmed (it
never reached the user). The outbox (bot/reminders/outbox.py) calls these inside the transaction
that claims the occurrence and writes its message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import cast

from sqlalchemy import select

from bot.reminders.base import (
    ACTIVE_STATES,
    LATE_AFTER,
    REMINDER_PURPOSES,
    RESEND_AFTER,
    DeliveryState,
    OccurrenceState,
    Purpose,
    local,
)
from bot.reminders.schedule import Schedule
from bot.storage.session import DbSession
from bot.storage.tables import Delivery, Occurrence, Reminder
from core.reminders import following_dose
from flows import reminders as words
from flows.replies import Reply


class Due(Schedule):
    """The occurrence side of the outbox: each due occurrence moved on and its message decided."""

    async def _reached(self, session: DbSession, due: Sequence[Occurrence], now: dt.datetime) -> set[int]:
        """Of the doses whose deadline has come, those whose reminder reached the user before it
        (a delivery 'sent' before the deadline): one read for the batch."""
        ids = [o.id for o in due if o.deadline_at is not None and now >= o.deadline_at and o.state in ACTIVE_STATES]
        if not ids:
            return set()
        rows = await session.execute(
            select(Delivery.occurrence_id, Delivery.key, Delivery.sent_at).where(
                Delivery.occurrence_id.in_(ids), Delivery.state == DeliveryState.SENT
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
        session: DbSession,
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
        if occurrence.state in (OccurrenceState.SCHEDULED, OccurrenceState.SNOOZED):
            late = None
            if occurrence.state == OccurrenceState.SCHEDULED and now - occurrence.due_at > LATE_AFTER:
                late = f"{local(occurrence.due_at, zone):%H:%M on %a %Y-%m-%d}"
            purpose = (
                Purpose.REMINDER
                if occurrence.state == OccurrenceState.SCHEDULED
                else f"{Purpose.SNOOZED}{now:%Y%m%d%H%M%S%f}"
            )
            first = occurrence.state == OccurrenceState.SCHEDULED
            occurrence.sends += 1 if first else 0
            occurrence.state = OccurrenceState.SENT
            if occurrence.kind == "heads_up":
                occurrence.state, occurrence.next_at = OccurrenceState.DONE, None
            elif first:
                again = now + RESEND_AFTER
                occurrence.next_at = again if deadline is None or again < deadline else deadline
            else:
                occurrence.next_at = deadline
            return purpose, self._reminder_reply(occurrence, reminder, label, late_since=late)
        if occurrence.state == OccurrenceState.SENT and occurrence.sends == 1:
            occurrence.sends = 2
            occurrence.next_at = deadline
            return Purpose.AGAIN, self._reminder_reply(occurrence, reminder, label, again=True)
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
            decided=occurrence.dose_decided,
            again=again,
            late_since=late_since,
        )

    async def _missed(
        self,
        session: DbSession,
        occurrence: Occurrence,
        reminder: Reminder,
        zone: str,
        label: str,
        now: dt.datetime,
    ) -> tuple[str, Reply]:
        """Reminded and not confirmed by its deadline: recorded as missed, the drug's own rule sent, the
        schedule moves on."""
        await self._move_on(session, occurrence, reminder, OccurrenceState.MISSED, zone, now)
        self._record(session, reminder, occurrence.on_date, "missed", now)
        return Purpose.MISSED, await self._guidance(session, occurrence, reminder, label, local(now, zone).date())

    async def _unconfirmed(
        self,
        session: DbSession,
        occurrence: Occurrence,
        reminder: Reminder,
        zone: str,
        label: str,
        now: dt.datetime,
    ) -> tuple[str, Reply]:
        """RULES.md 6: its reminder never reached the user before the deadline, so the dose is not
        declared missed (it may have been taken): the user is asked. The schedule moves on as after a
        missed dose; nothing is recorded until the answer."""
        await self._move_on(session, occurrence, reminder, OccurrenceState.UNKNOWN, zone, now)
        due = f"{local(occurrence.due_at, zone):%H:%M on %a %Y-%m-%d}"
        return Purpose.UNCONFIRMED, words.unconfirmed_message(
            occurrence.id, reminder.drug, label, occurrence.on_date, due
        )

    async def _move_on(
        self, session: DbSession, occurrence: Occurrence, reminder: Reminder, state: str, zone: str, now: dt.datetime
    ) -> None:
        occurrence.state, occurrence.next_at, occurrence.acted_at = state, None, now
        following = following_dose(reminder.drug, occurrence.on_date, None)
        if following is not None:  # not fresh: after downtime, each passed day gets its own message
            await self._add_dose(session, reminder, following, zone, now)
