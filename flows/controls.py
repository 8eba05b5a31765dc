"""The consultation's controls: start, cancel, back, /start and /help, and opening a patient's
record (`fu:LABEL`, `fc:LABEL`) from any state.

A part of `Conversation` (flows/consultation.py), as `ResultScreen` and `ReminderSetup` are: the routes
the consultation owns (flows/routes.py) call these.
"""

from __future__ import annotations

from transitions import EventData

from flows import followup, render
from flows.conversation_parts import NEW, REMINDER_STATES, State, Talk
from flows.replies import Button
from flows.state import Answers
from flows.steps import STEP_BY_NAME, record_answers


class Controls:
    """What the consultation's own commands and record buttons do."""

    def start(self: Talk) -> None:
        self.chat.answers = Answers()
        self.chat.request = self.chat.response = None
        self.chat.saved = self.chat.reminders_set = False
        self.fire("start")

    def open_record(self: Talk, kind: str, label: str) -> None:
        """`fu:LABEL` (Same regimen, new result) or `fc:LABEL` (a full consultation), from any state."""
        record = followup.find(label, self.env)
        if record is None:
            self.say(followup.unknown(label))
            return None if self.state == State.idle else self.reask()
        if kind == followup.FOLLOWUP and not followup.has_regimen(record):
            full = Button("Full consultation", followup.FULL + record.label)
            return self.say(followup.no_regimen(record.label), ((full, NEW),))
        if self.state in STEP_BY_NAME or self.state == State.review:
            self.say("The consultation under way is closed; nothing from it was saved.")
        self.chat.request = self.chat.response = None
        self.chat.saved = self.chat.reminders_set = False
        if kind == followup.FOLLOWUP:
            self.chat.answers = followup.prefill(record, self.env)
            self.state = State.idle
            return self.fire("start")
        if record.drug is None:
            return self.start()
        # The drug and the patient are answered; the record's values are offered as Keep from the weight on.
        answers = Answers(drug=record.drug, indication=record.indication, region=record.region)
        self.chat.answers = answers.model_copy(update=record_answers(record.drug, record, self.env))
        self.state = State.patient
        self.fire("advance")

    def show_record(self: Talk, event: EventData) -> None:
        """Back from the follow-up's first question (now idle): the record message again (nothing was entered)."""
        record = self.answers.record
        self.chat.answers = Answers()
        if record is not None:
            self.outcome.replies.append(followup.record_message(record, self.env))

    def cancel(self: Talk) -> None:
        if self.state == State.idle:
            return self.say("Nothing to cancel.", ((NEW,),))
        if self.state in REMINDER_STATES:
            self.say("No reminders set; the saved recommendation is kept.", (self.result_row(),))
            return self.fire("leave_reminders")
        self.chat.answers = Answers()
        self.fire("cancel")
        self.say("Consultation cancelled; nothing was saved from it.", ((NEW,),))

    def back(self: Talk) -> None:
        if self.state == State.idle:
            return self.say("There is no consultation under way.", ((NEW,),))
        self.answers.pending = None
        self.answers.editing = False
        if self.state == State.result and self.answers.followup and self.answers.followup_asked:
            # A follow-up has no review screen: Back returns to its last question.
            return self.fire(f"edit_{self.answers.followup_asked[-1]}")
        self.fire("retreat")

    def welcome(self: Talk) -> None:
        self.say(render.WELCOME, ((NEW, Button("My patients", "patients")),))
        if self.state == State.result and self.chat.response is not None:
            self.say("Your last recommendation:")
            self.reask()
        elif self.state != State.idle:
            self.say("You have a consultation under way; it continues here:")
            self.reask()

    def help(self: Talk) -> None:
        self.say(render.help_text(self.state))
        self.reask()
