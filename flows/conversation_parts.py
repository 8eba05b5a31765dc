"""What the parts of a `Conversation` share: the buttons every screen offers, the machine's states
(`State`), and `Talk`, what the parts (flows/result_screen.py, flows/setup_reminders.py) may use of
the conversation they belong to.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, Protocol

from core.reminders import PlannedReminder
from flows.replies import Button, Env, Outcome, Reply
from flows.state import Answers, ChatState
from flows.steps import Step

NAVIGATION = (Button("⬅ Back", "back"), Button("✖ Cancel", "cancel"), Button("? Help", "help"))
NEW = Button("New consultation", "new")
CHANGE_REMINDERS = Button("Change reminders", "reminders")  # the service answers it as /reminders
YES, NO = "v:yes", "v:no"


class State(StrEnum):
    """Where a consultation is: the machine's states. The questions are flows/steps.py's `STEPS`, in
    order (flows/consultation.py checks that at import); a chat saves the value (a plain string)."""

    idle = "idle"
    drug = "drug"
    indication = "indication"
    region = "region"
    patient = "patient"
    weight = "weight"
    age = "age"
    weight_date = "weight_date"
    child_pugh = "child_pugh"
    procedure_date = "procedure_date"
    status = "status"
    dose_amount = "dose_amount"
    dose_since = "dose_since"
    last_given = "last_given"
    doses_at_level = "doses_at_level"
    adverse = "adverse"
    lab_value = "lab_value"
    lab_date = "lab_date"
    previous_value = "previous_value"
    previous_date = "previous_date"
    counts = "counts"
    transfusions = "transfusions"
    baseline = "baseline"
    review = "review"
    result = "result"
    reminder_zone = "reminder_zone"
    reminder_time = "reminder_time"


REMINDER_STATES = (State.reminder_zone, State.reminder_time)


class Talk(Protocol):
    """The conversation as its parts see it (flows/consultation.py's `Conversation`)."""

    chat: ChatState
    env: Env
    outcome: Outcome

    @property
    def state(self) -> State: ...

    @state.setter
    def state(self, value: State) -> None: ...

    @property
    def answers(self) -> Answers: ...

    @property
    def drug(self) -> str: ...

    @property
    def zone_for_reminders(self) -> str: ...

    def fire(self, trigger: str) -> None: ...

    def say(self, text: str, buttons: tuple[tuple[Button, ...], ...] = ()) -> None: ...

    def reask(self) -> None: ...

    def start(self) -> None: ...

    def ask(self, step: Step, prefix: str = "") -> None: ...

    def applicable_steps(self) -> list[Step]: ...

    def on_answer(self, step: Step, answer: str, data: str | None) -> None: ...

    def apply(self, step: Step, updates: dict[str, Any]) -> None: ...

    def result_row(self) -> tuple[Button, ...]: ...

    def on_remind(self) -> None: ...

    def planned(self, at: dt.time = dt.time(0)) -> list[PlannedReminder]: ...

    def with_navigation(self, reply: Reply, prefix: str = "") -> Reply: ...
