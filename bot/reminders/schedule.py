"""Setting up reminders: a saved recommendation's schedule, the next dose day, stopping a patient's
reminders, and moving unsent days to a new local time (a new zone, a new time, a resume)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select, update

from bot.reminders.base import (
    _OCCURRENCES,
    _PATIENTS,
    _REMINDERS,
    ACTIVE_STATES,
    OccurrenceState,
    ReminderBase,
    local,
    utc_at,
)
from bot.storage.session import DbSession
from bot.storage.tables import Occurrence, Reminder
from core.reminders import INJECTED, RESULT_FIRST, following_dose, missed_after
from core.reminders import plan as plan_reminders
from flows import reminders as words
from flows.replies import ScheduleReminders


class Schedule(ReminderBase):
    """The occurrences of each reminder: created, moved on to the next dose day, moved, stopped."""

    async def schedule(
        self, session: DbSession, user_id: int, chat_key: str, effect: ScheduleReminders, zone: str
    ) -> None:
        """The patient's reminders from a saved recommendation; earlier ones of the patient stop."""
        patient_id = await session.scalar(
            select(_PATIENTS.c.id).where(_PATIENTS.c.user_id == user_id, _PATIENTS.c.label == effect.patient_label)
        )
        assert patient_id is not None, "reminders are offered only after the consultation is saved"
        await self._stop_patient(session, patient_id)
        response, drug = effect.response, effect.drug
        now = self.now()
        at = effect.local_time
        reminder = Reminder(
            user_id=user_id,
            patient_id=patient_id,
            chat_key=chat_key,
            drug=drug,
            dose_amount=format(Decimal(str(response.dose.amount)).normalize(), "f") if response.dose else None,
            dose_unit=response.dose.unit if response.dose else None,
            dose_text=words.dose_instruction(drug, response),
            lab_text=words.lab_words(response),
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
            day, by = missed_after(reminder.drug, on, at)
            deadline = utc_at(day, by, zone)
        return Occurrence(
            reminder_id=reminder.id,
            kind=kind,
            on_date=on,
            dose_on=(on + dt.timedelta(days=1) if kind == "heads_up" else on) if decided and kind != "lab" else None,
            due_at=due,
            deadline_at=deadline,
            state=OccurrenceState.SCHEDULED,
            sends=0,
            next_at=due,
        )

    async def _add_dose(
        self, session: DbSession, reminder: Reminder, day: dt.date, zone: str, now: dt.datetime, fresh: bool = False
    ) -> Occurrence | None:
        """The next dose day of a running schedule, with its heads-up for an injection.

        None for a stopped reminder. A dose already open on or after `day` is the next one (never
        two). A paused reminder's occurrence waits (no `next_at`) until it is resumed. `fresh` (set
        up or resumed by the user just now): days whose deadline has passed are skipped, not missed.
        """
        if reminder.status == "stopped":
            return None
        drug = reminder.drug
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

    async def _stop_patient(self, session: DbSession, patient_id: int) -> None:
        """Core statements (no ORM session synchronisation, which cost a read each): callers stop a
        patient's reminders last, with none of these rows loaded, or return at once after it; changes
        already made to loaded rows are written first, so these statements have the last word."""
        await session.flush()
        ids = select(_REMINDERS.c.id).where(_REMINDERS.c.patient_id == patient_id)
        await session.execute(
            update(_OCCURRENCES)
            .where(_OCCURRENCES.c.reminder_id.in_(ids), _OCCURRENCES.c.state.in_(ACTIVE_STATES))
            .values(state=OccurrenceState.CANCELLED, next_at=None)
        )
        await session.execute(update(_REMINDERS).where(_REMINDERS.c.patient_id == patient_id).values(status="stopped"))

    async def rezone(self, session: DbSession, user_id: int, zone: str) -> None:
        """A new time zone: reminders not yet sent move to the same local time in it."""
        now = self.now()
        rows = await session.execute(
            select(Occurrence, Reminder)
            .join(Reminder, Reminder.id == Occurrence.reminder_id)
            .where(Reminder.user_id == user_id, Occurrence.state == OccurrenceState.SCHEDULED)
        )
        for occurrence, reminder in rows:
            self._move(occurrence, reminder, zone, now)

    def _move(self, occurrence: Occurrence, reminder: Reminder, zone: str, now: dt.datetime) -> None:
        """An unsent occurrence to the reminder's (new) local time in `zone`; left where it was if in
        the new time its day would already be over (it would count as missed without ever being sent)."""
        decided = occurrence.dose_decided
        moved = self._occurrence(reminder, occurrence.kind, occurrence.on_date, decided, zone, now)
        if moved.deadline_at is not None and moved.deadline_at <= now:
            return
        occurrence.due_at, occurrence.deadline_at = moved.due_at, moved.deadline_at
        if reminder.status == "active":
            occurrence.next_at = moved.next_at

    async def _resume(
        self, session: DbSession, occurrence: Occurrence, reminder: Reminder, zone: str, now: dt.datetime
    ) -> None:
        """Back on: a day that passed while paused is dropped (with its successor scheduled), else it is due."""
        if occurrence.due_at >= now or (occurrence.deadline_at is not None and occurrence.deadline_at > now):
            if occurrence.state in (OccurrenceState.SCHEDULED, OccurrenceState.SNOOZED):
                # Still open: due now at the latest, and not "late" (the user paused it; no downtime).
                if occurrence.state == OccurrenceState.SCHEDULED:
                    occurrence.due_at = max(occurrence.due_at, now)
                occurrence.next_at = max(occurrence.due_at, now)
            else:
                occurrence.next_at = occurrence.deadline_at
            return
        occurrence.state, occurrence.next_at = OccurrenceState.CANCELLED, None
        if occurrence.kind == "dose":
            today = local(now, zone).date()
            day = following_dose(reminder.drug, occurrence.on_date, None)
            if day is None and reminder.drug == "luspatercept":
                day = today  # still owed (section 6: as soon as possible): reminded today
            if day is not None:
                await self._add_dose(session, reminder, max(day, today), zone, now, fresh=True)
