"""Answering a question: the typed or pressed answer parsed by its step, confirmed when the step asks
(a unit mix-up, a value far from the record), applied, and the dependants it changes asked again.

A part of `Conversation` (flows/consultation.py); `SCREENS` routes every question state's input here.
"""

from __future__ import annotations

from typing import Any

from flows import followup
from flows.conversation_parts import NAVIGATION, NO, YES, Talk
from flows.dependants import reopen_dependants
from flows.parsing import Problem
from flows.replies import Button
from flows.state import Answers, Pending
from flows.steps import ANSWERED, STEP_BY_NAME, Confirm, Step


class Answering:
    """The question states' answer."""

    def answer_step(self: Talk, data: str | None, text: str) -> None:
        answer = data.removeprefix("v:") if data is not None else text
        if self.answers.followup:
            answer = followup.translate(self.state, answer)
            both = followup.nothing_new(self.state, answer, self.answers, self.env)
            if both is not None and self.answers.pending is None:
                return self.apply(STEP_BY_NAME[self.state], both)
        self.on_answer(STEP_BY_NAME[self.state], answer, data)

    def on_answer(self: Talk, step: Step, answer: str, data: str | None) -> None:
        answers = self.answers
        if answers.pending is not None:
            if data == YES or answer.lower() in ("yes", "y"):
                updates = answers.pending.updates
                answers.pending = None
                return self.apply(step, updates)
            retry = answers.pending.retry
            answers.pending = None
            if data == NO or answer.lower() in ("no", "n"):
                if retry is not None:
                    return self.fire(f"edit_{retry}")
                return self.ask(step, "OK, please enter it again. ")
        if not answer:
            return self.ask(step, "Please answer the question. ")
        parsed = step.parse(answer, answers, self.env)
        if isinstance(parsed, Problem):
            return self.ask(step, parsed.message + "\n")
        if isinstance(parsed, Confirm):
            updates = jsonable(parsed.updates)
            answers.pending = Pending(step=step.name, question=parsed.question, updates=updates, retry=parsed.retry)
            return self.say(parsed.question, (confirm_buttons(), NAVIGATION))
        self.apply(step, parsed)

    def apply(self: Talk, step: Step, updates: dict[str, Any]) -> None:
        stay = bool(updates.pop("_stay", False))
        restored = Answers.model_validate({**self.answers.model_dump(), **updates})
        restored = reopen_dependants(self.answers, restored, step.name, updates)  # flows/dependants.py DEPENDANTS
        drug_changed = restored.drug != self.answers.drug
        self.chat.answers = restored
        if stay:
            return self.ask(step)
        if restored.editing and not drug_changed:
            missing = next((s.name for s in self.applicable_steps() if not ANSWERED[s.name](restored)), None)
            return self.fire(f"edit_{missing}" if missing else "finish_edit")
        self.fire("advance")


def confirm_buttons() -> tuple[Button, ...]:
    return (Button("Yes, use it", YES), Button("No, re-enter", NO))


def jsonable(updates: dict[str, Any]) -> dict[str, Any]:
    dumped = Answers.model_validate(updates).model_dump(mode="json", include=set(updates))
    return dumped | {"_stay": True} if updates.get("_stay") else dumped  # a list answer stays open after a yes
