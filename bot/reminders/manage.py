"""/reminders: the list of a user's reminders, and its buttons (pause, resume, stop, a new time)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select, update

from bot.reminders.base import ACTIVE_STATES, OccurrenceState, local
from bot.reminders.schedule import Schedule
from bot.storage.session import DbSession
from bot.storage.tables import Occurrence, PatientRow, Reminder
from core.reminders import RESULT_FIRST
from flows import reminders as words
from flows.buttons import ManageAction, ReminderAction, reminder_action
from flows.replies import Button, Reply
from flows.steps import DRUG_NAMES


class Manage(Schedule):
    """The /reminders listing and its management buttons."""

    async def listing(self, session: DbSession, user_id: int, zone: str) -> Reply:
        rows = (
            await session.execute(
                select(Reminder, PatientRow.label)
                .join(PatientRow, PatientRow.id == Reminder.patient_id)
                .where(Reminder.user_id == user_id, Reminder.status != "stopped")
                .order_by(PatientRow.label)
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
                Button(f"Resume {label}", ReminderAction(ManageAction.RESUME, reminder.id).encode())
                if reminder.status == "paused"
                else (Button(f"Pause {label}", ReminderAction(ManageAction.PAUSE, reminder.id).encode()))
            )
            ask_time = Button(f"Time {label}", ReminderAction(ManageAction.ASK_TIME, reminder.id).encode())
            stop = Button(f"Stop {label}", ReminderAction(ManageAction.STOP, reminder.id).encode())
            buttons.append((toggle, ask_time, stop))
        if len(lines) == 1:
            return Reply(words.NO_REMINDERS)
        return Reply("\n".join(lines), tuple(buttons))

    async def manage(self, session: DbSession, user_id: int, data: str, zone: str) -> Reply:
        """A /reminders button (`flows.buttons.ReminderAction`): pause, resume, stop, ask the time, set the time."""
        pressed = reminder_action(data)
        if pressed is None:
            return Reply(words.NOT_UNDERSTOOD_MANAGE)
        action, reminder_id = pressed.action, pressed.reminder_id
        found = (
            await session.execute(
                select(Reminder, PatientRow.label)
                .join(PatientRow, PatientRow.id == Reminder.patient_id)
                .where(Reminder.id == reminder_id, Reminder.user_id == user_id)
            )
        ).first()
        if found is None:
            return Reply(words.NOT_YOURS)
        reminder, label = found
        if reminder.status == "stopped":
            return Reply(f"The reminders for {label} are stopped. Set new ones after a consultation.")
        now = self.now()
        pending = select(Occurrence).where(Occurrence.reminder_id == reminder.id, Occurrence.state.in_(ACTIVE_STATES))
        if action is ManageAction.PAUSE:
            reminder.status = "paused"
            await session.execute(
                update(Occurrence)
                .where(Occurrence.reminder_id == reminder.id, Occurrence.state.in_(ACTIVE_STATES))
                .values(next_at=None)
            )
            return Reply(f"Reminders for {label} paused. /reminders to resume them.")
        if action is ManageAction.RESUME:
            if reminder.status not in ("paused", "blocked"):
                return Reply(f"The reminders for {label} are already on.")
            reminder.status = "active"
            for occurrence in await session.scalars(pending):
                await self._resume(session, occurrence, reminder, zone, now)
            return Reply(
                f"Reminders for {label} resumed. Days that passed while paused are not reminded; "
                "a dose still open today is."
            )
        if action is ManageAction.STOP:
            await self._stop_patient(session, reminder.patient_id)
            return Reply(f"Reminders for {label} stopped.")
        if action is ManageAction.ASK_TIME:
            choices = [
                Button(
                    choice, ReminderAction(ManageAction.SET_TIME, reminder.id, dt.time.fromisoformat(choice)).encode()
                )
                for choice in words.TIME_CHOICES
            ]
            return Reply(
                f"New local time for {label}'s reminders ({zone})?",
                tuple(tuple(choices[i : i + 3]) for i in range(0, len(choices), 3)),
            )
        if pressed.at is None:  # SET_TIME always carries its time (flows.buttons)
            return Reply(words.NOT_UNDERSTOOD_MANAGE)
        reminder.local_time = pressed.at.strftime("%H:%M")
        for occurrence in await session.scalars(pending.where(Occurrence.state == OccurrenceState.SCHEDULED)):
            self._move(occurrence, reminder, zone, now)
        return Reply(f"Reminders for {label} now at {reminder.local_time} ({zone}).")
