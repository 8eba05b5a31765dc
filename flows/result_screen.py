"""The recommendation screen: the recommendation computed on entering it, and its buttons (Save,
Why?, Set reminders) answered.

A part of `Conversation` (flows/consultation.py), which the shared machine calls on entering `result`.
"""

from __future__ import annotations

from pydantic import ValidationError
from transitions import EventData

from core import RequestError, recommend
from core.errors import from_validation_error
from core.models import DoseRequest, DoseResponse
from flows import render
from flows.buttons import Word
from flows.conversation_parts import CHANGE_REMINDERS, REMINDER_STATES, Talk
from flows.replies import AuditRecommendation, Button, Reply, SaveConsultation, request_json, response_json
from flows.request import build_request, step_for_field
from flows.steps import STEP_BY_NAME


class ResultScreen:
    """The recommendation and what its buttons do."""

    def enter_result(self: Talk, event: EventData) -> None:
        if event.transition is not None and event.transition.source in REMINDER_STATES:
            # Back from setting reminders: the recommendation stands (it is above), not computed again.
            if event.event.name == "retreat":
                self.say("Back to the recommendation; no reminders set.", (self.result_row(),))
            return
        try:
            payload = build_request(self.answers, self.env)
            request = DoseRequest.model_validate(payload)
            response = recommend(request)
        except (RequestError, ValidationError) as exc:
            field, message = _fault(exc)
            step = step_for_field(field)
            # In the chat's words: no contract field names ('as_of' is today's date here).
            detail = message.split(": ", 1)[-1].replace("as_of", "today")
            self.say(f"{STEP_BY_NAME[step].title}: {detail}. Please give it again:")
            self.answers.editing = True
            self.fire(f"edit_{step}")
            return
        self.chat.request = request_json(request)
        self.chat.response = response_json(response)
        self.chat.saved = False
        self.chat.reminders_set = False
        self.outcome.effects.append(AuditRecommendation(self.answers.patient_label, request, response))
        self.outcome.replies.append(render.recommendation(response, self.answers, self.env))

    def on_result(self: Talk, data: str | None, text: str) -> None:
        if data == "why" or text.lower() in ("why", "why?"):
            assert self.chat.response is not None
            why = render.why(self.chat.response, self.chat.saved)
            return self.outcome.replies.append(Reply(why.text, (self.result_row(),)))
        if data == "reminders":  # typed "Change reminders" (the button itself is answered by the service)
            return self.say("Type /reminders to see and change the reminders.", (self.result_row(),))
        if data == "remind" or text.lower() in ("remind", "reminders", "set reminders"):
            if self.chat.reminders_set:
                return self.say(
                    "Reminders are already set for this recommendation; /reminders shows and changes them.",
                    (self.result_row(),),
                )
            return self.on_remind()
        if data == "save" or text.lower() == "save":
            if self.chat.saved:
                return self.say(f"Already saved to {self.answers.patient_label}.", (self.result_row(),))
            label = self.answers.patient_label
            assert label is not None
            self.outcome.effects.append(SaveConsultation(label, self.chat.dose_request(), self.chat.dose_response()))
            self.chat.saved = True
            undo = (Button("↩ Undo", Word.UNDO.value),)  # takes this save back (bot/record_edits.py)
            return self.say(
                f"Saved to {label}: dose, result and recommendation.",
                (self.result_row(), *render.trend_rows(label), undo),
            )
        choices = "Save to patient" if not self.chat.saved else "Set reminders" if not self.chat.reminders_set else ""
        self.say(f"Press {choices + ', ' if choices else ''}Why? or New consultation.", (self.result_row(),))

    def result_row(self: Talk) -> tuple[Button, ...]:
        """The recommendation's buttons now: Set reminders is not offered again once they are set."""
        buttons = render.result_buttons(self.chat.saved)
        if self.chat.reminders_set:
            return tuple(CHANGE_REMINDERS if button.data == "remind" else button for button in buttons)
        return buttons

    def card(self: Talk) -> Reply:
        """The recommendation again, from the stored response, with the buttons it has now."""
        assert self.chat.response is not None
        shown = render.recommendation(DoseResponse.model_validate(self.chat.response), self.answers, self.env)
        return Reply(shown.text, (self.result_row(), *render.trend_rows(self.answers.patient_label)))


def _fault(exc: RequestError | ValidationError) -> tuple[str | None, str]:
    """The contract's field and message for a request the core refused."""
    error = from_validation_error(exc) if isinstance(exc, ValidationError) else exc
    return error.field, error.message
