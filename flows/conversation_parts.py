"""What the parts of a `Conversation` share: the buttons every screen offers, and `Talk`, what the
parts (flows/result_screen.py, flows/setup_reminders.py) may use of the conversation they belong to.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from core.reminders import PlannedReminder
from flows.replies import Button, Env, Outcome, Reply
from flows.state import Answers, ChatState

NAVIGATION = (Button("⬅ Back", "back"), Button("✖ Cancel", "cancel"), Button("? Help", "help"))
NEW = Button("New consultation", "new")
CHANGE_REMINDERS = Button("Change reminders", "reminders")  # the service answers it as /reminders
YES, NO = "v:yes", "v:no"


class Talk(Protocol):
    """The conversation as its parts see it (flows/consultation.py's `Conversation`)."""

    chat: ChatState
    env: Env
    outcome: Outcome

    @property
    def state(self) -> str: ...

    @property
    def answers(self) -> Answers: ...

    @property
    def drug(self) -> str: ...

    @property
    def zone_for_reminders(self) -> str: ...

    def fire(self, trigger: str) -> None: ...

    def say(self, text: str, buttons: tuple[tuple[Button, ...], ...] = ()) -> None: ...

    def reask(self) -> None: ...

    def result_row(self) -> tuple[Button, ...]: ...

    def on_remind(self) -> None: ...

    def planned(self, at: dt.time = dt.time(0)) -> list[PlannedReminder]: ...

    def with_navigation(self, reply: Reply, prefix: str = "") -> Reply: ...
