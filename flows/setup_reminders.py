"""Setting reminders after a saved recommendation: the time zone and time questions and their answers.

A part of `Conversation` (flows/consultation.py), which the shared machine calls on entering the
reminder states; the words are flows/reminders.py's.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from transitions import EventData

from core.reminders import PlannedReminder
from core.reminders import plan as plan_reminders
from flows import reminders as reminder_words
from flows import render
from flows.conversation_parts import NAVIGATION, REMINDER_STATES, State, Talk
from flows.parsing import Problem
from flows.replies import Reply, ScheduleReminders, SetTimeZone

__all__ = ["REMINDER_STATES", "ReminderSetup"]


class ReminderSetup:
    """The reminder questions of a conversation: from Set reminders to the plan's summary."""

    @property
    def drug(self: Talk) -> str:
        return self.answers.drug or ""

    def with_navigation(self: Talk, reply: Reply, prefix: str = "") -> Reply:
        return Reply(prefix + reply.text, (*reply.buttons, NAVIGATION))

    @property
    def zone_for_reminders(self: Talk) -> str:
        return self.chat.reminder_zone or self.env.time_zone or "UTC"

    def planned(self: Talk, at: dt.time = dt.time(0)) -> list[PlannedReminder]:
        response = self.chat.dose_response()
        zone = self.zone_for_reminders
        now = (
            self.env.now.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
            if self.env.now is not None
            else dt.datetime.combine(self.env.today, dt.time(0))
        )
        return plan_reminders(self.chat.dose_request().drug, response, now, at)

    def on_remind(self: Talk) -> None:
        if not self.chat.saved:
            return self.say(
                "Reminders belong to a patient's record: press Save to patient first.",
                (render.result_buttons(False),),
            )
        if not self.planned():
            return self.say(
                "This recommendation sets no dose or test date to remind of (a referral, or nothing due).",
                (render.result_buttons(True),),
            )
        self.chat.reminder_zone = self.env.time_zone or self.chat.reminder_zone
        self.fire("ask_time" if self.chat.reminder_zone else "ask_zone")

    def enter_reminder_zone(self: Talk, event: EventData) -> None:
        self.outcome.replies.append(self.with_navigation(reminder_words.zone_question()))

    def enter_reminder_time(self: Talk, event: EventData) -> None:
        self.outcome.replies.append(self.with_navigation(reminder_words.time_question(self.drug)))

    def on_reminder_answer(self: Talk, answer: str) -> None:
        if not answer:
            return self.reask()
        if self.state == State.reminder_zone:
            zone = reminder_words.known_zone(answer)
            if zone is None:
                problem = f"'{answer}' is not a time zone I know. Use an Area/City name, e.g. Europe/London.\n"
                return self.outcome.replies.append(self.with_navigation(reminder_words.zone_question(), problem))
            self.chat.reminder_zone = zone
            self.outcome.effects.append(SetTimeZone(zone))
            return self.fire("ask_time")
        at = reminder_words.parse_time(answer)
        if isinstance(at, Problem):
            question = reminder_words.time_question(self.drug)
            return self.outcome.replies.append(self.with_navigation(question, at.message + "\n"))
        label = self.answers.patient_label
        assert label is not None
        response = self.chat.dose_response()
        self.outcome.effects.append(ScheduleReminders(label, self.chat.dose_request().drug, response, at))
        self.chat.reminders_set = True
        lab = reminder_words.lab_words(response)
        dose = reminder_words.dose_instruction(self.drug, response)
        summary = reminder_words.plan_summary(label, self.planned(at), at, self.zone_for_reminders, lab, dose)
        self.say(summary, (self.result_row(),))
        self.fire("leave_reminders")
