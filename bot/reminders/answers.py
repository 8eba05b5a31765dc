"""The user's answers to a reminder: Taken, Skip, Snooze, Noted, Given today, a late Taken on a
chosen day, and the Yes / No of a dose whose reminder never reached them (RULES.md 6)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select, update

from bot.reminders.base import ACTIVE_STATES, SNOOZE, OccurrenceState, local
from bot.reminders.schedule import Schedule
from bot.storage.session import DbSession
from bot.storage.tables import Dose, Occurrence, PatientRow, Regimen, Reminder
from core.missed import missed_dose_guidance
from core.models import Drug
from core.reminders import INJECTED, INTERVAL, following_dose
from flows import reminders as words
from flows.buttons import AnswerAction, occurrence_answer
from flows.replies import Reply
from flows.steps import DRUG_NAMES


class Answers(Schedule):
    """A reminder's buttons: what each records, and what the schedule does next."""

    async def answer(self, session: DbSession, user_id: int, data: str, zone: str) -> list[Reply]:
        """A reminder's button (`flows.buttons.OccurrenceAnswer`); one that does not decode changes nothing."""
        found = occurrence_answer(data)
        if found is None:
            return [Reply(words.NOT_UNDERSTOOD)]
        return await self.acknowledge(session, user_id, found.action, found.occurrence_id, zone, found.day)

    async def acknowledge(
        self,
        session: DbSession,
        user_id: int,
        action: AnswerAction,
        occurrence_id: int,
        zone: str,
        day: dt.date | None = None,
    ) -> list[Reply]:
        """Taken, Skip, Snooze, Noted, taken on a day (a late Taken), the Yes / No of an unconfirmed
        dose, or a late dose given after a missed one. An action that does not belong to the
        reminder's kind (a forged or stale button) changes nothing."""
        found = (
            await session.execute(
                select(Occurrence, Reminder, PatientRow.label)
                .join(Reminder, Reminder.id == Occurrence.reminder_id)
                .join(PatientRow, PatientRow.id == Reminder.patient_id)
                .where(Occurrence.id == occurrence_id, Reminder.user_id == user_id)
            )
        ).first()
        if found is None:
            return [Reply(words.NOT_YOURS)]
        occurrence, reminder, label = found
        now = self.now()
        today = local(now, zone).date()
        drug = reminder.drug
        on, state = occurrence.on_date, occurrence.state
        if action not in words.ACTIONS["dose"] | words.ACTIONS["lab"] or (action == words.ON_DAY) != (day is not None):
            return [Reply(words.NOT_UNDERSTOOD)]
        if action not in words.ACTIONS.get(occurrence.kind, frozenset()):
            return [Reply(words.not_its_kind(occurrence.kind, label, reminder.lab_text, occurrence.on_date))]
        if state == OccurrenceState.CANCELLED:
            return [Reply(f"That reminder for {label} was stopped; nothing recorded.")]
        if action == words.NOTED:
            occurrence.state, occurrence.next_at, occurrence.acted_at = OccurrenceState.DONE, None, now
            return [Reply(f"Noted: {reminder.lab_text} for {label} on {on:%a %Y-%m-%d}.")]
        if state == OccurrenceState.TAKEN or (state == OccurrenceState.SKIPPED and action != words.GIVEN):
            return [Reply(f"Already recorded for {label}: dose of {on} {state}.")]
        if state == OccurrenceState.UNKNOWN:  # RULES.md 6: never declared missed without the user's No
            if action in (words.NO, words.SKIP):
                occurrence.state, occurrence.acted_at = OccurrenceState.MISSED, now
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
            if state == OccurrenceState.MISSED:
                return [Reply(f"That dose is already recorded as missed; see the guidance above for {label}.")]
            again = now + SNOOZE
            if occurrence.deadline_at is not None and again >= occurrence.deadline_at:
                by = local(occurrence.deadline_at, zone)
                return [Reply(f"Too late to snooze: confirm the dose before {by:%H:%M}, or it is recorded as missed.")]
            occurrence.state, occurrence.next_at = OccurrenceState.SNOOZED, again
            return [Reply(f"Snoozed: I will remind you again at {local(again, zone):%H:%M}.")]
        if action == words.SKIP:
            if state == OccurrenceState.MISSED:
                return [Reply(f"That dose is already recorded as missed for {label}.")]
            occurrence.state, occurrence.next_at, occurrence.acted_at = OccurrenceState.SKIPPED, None, now
            self._record(session, reminder, on, "skipped", now)
            following = following_dose(drug, on, None)
            if following is not None:
                await self._add_dose(session, reminder, following, zone, now)
            return [await self._guidance(session, occurrence, reminder, label, today, skipped=True)]
        if action == words.GIVEN:  # from the missed- or skipped-dose message: given today
            if state not in (OccurrenceState.MISSED, OccurrenceState.SKIPPED):
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

    async def _taken(
        self,
        session: DbSession,
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
        drug = reminder.drug
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
        moved_on = occurrence.state in (
            OccurrenceState.MISSED,
            OccurrenceState.SKIPPED,
            OccurrenceState.UNKNOWN,
        )  # the schedule moved on then
        occurrence.state, occurrence.next_at, occurrence.acted_at = OccurrenceState.TAKEN, None, now
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
                .values(state=OccurrenceState.CANCELLED, next_at=None)
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
                lines.append(f"At least {INTERVAL[drug]} days between doses (RULES.md section 6).")
        return [Reply("\n".join(lines))]

    async def _amount(self, session: DbSession, reminder: Reminder, occurrence: Occurrence) -> tuple[str, str]:
        """The dose given: the decided one, or for a dose that awaited a new result (RULES.md 6a) the
        patient's regimen as now recorded (a follow-up may have changed it)."""
        decided = reminder.dose_amount or "", reminder.dose_unit or ""
        if occurrence.dose_decided:
            return decided
        regimen = await session.scalar(select(Regimen).where(Regimen.patient_id == reminder.patient_id))
        if regimen is None or regimen.drug != reminder.drug or regimen.on_hold or not regimen.dose_amount:
            return decided
        return regimen.dose_amount, regimen.dose_unit
