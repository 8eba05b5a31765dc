"""What a flow sends back, with no transport in it: text, buttons, and requests for I/O.

The Telegram adapter turns a `Reply` into a message with an inline keyboard; the terminal chat
prints the buttons as numbered choices. `Effect`s are what the adapter must persist.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from core.models import DoseRequest, DoseResponse, Drug
from flows.state import LabRecord, PatientSummary, TransfusionRecord

__all__ = ["LabRecord", "PatientSummary", "TransfusionRecord"]


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    data: str  # short and stable: Telegram allows 64 bytes of callback data


@dataclass(frozen=True, slots=True)
class Document:
    """A file sent with a reply (Telegram: sendDocument, the reply's text its caption; the terminal
    writes it and prints its path). Bytes, not a path: the flows do no I/O."""

    filename: str
    content: bytes
    media_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    # The question takes a typed number: a transport that numbers its buttons must not read a typed
    # "3" as the third button (the terminal shows these buttons as #1, #2 ...).
    numeric: bool = False
    document: Document | None = None  # sent as a file, `text` its caption

    def button_labels(self) -> list[str]:
        return [button.label for row in self.buttons for button in row]


@dataclass(frozen=True, slots=True, kw_only=True)
class Photo(Reply):
    """A picture (PNG) sent with its caption (`text`): a trend chart. Telegram sends it as a photo
    (sendPhoto), the terminal writes it to a file; the caption stays within a photo's 1,024 characters."""

    png: bytes
    filename: str = "chart.png"


def rows(buttons: list[Button], per_row: int = 2) -> tuple[tuple[Button, ...], ...]:
    return tuple(tuple(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row))


@dataclass(frozen=True, slots=True)
class UserInput:
    """One thing the user did: typed text (commands included) or pressed a button."""

    text: str | None = None
    button: str | None = None  # the button's data


@dataclass(frozen=True, slots=True)
class Env:
    """What the adapter knows for this update: the date in the user's zone and their patients."""

    today: dt.date
    patients: dict[str, PatientSummary] = field(default_factory=dict)
    time_zone: str | None = None  # the user's own, once set (reminders ask for it first)
    now: dt.datetime | None = None  # the instant of this update (aware), for the reminders' plan


def request_json(request: DoseRequest) -> dict[str, Any]:
    """A request as the chat keeps it and the audit stores it: the contract's JSON, defaults left out."""
    return request.model_dump(mode="json", exclude_defaults=True)


def response_json(response: DoseResponse) -> dict[str, Any]:
    """A response as the chat keeps it and the audit stores it: the contract's JSON."""
    return response.model_dump(mode="json")


@dataclass(frozen=True, slots=True)
class SaveConsultation:
    """Persist the consultation to the patient's record (weight, regimen, doses, labs)."""

    patient_label: str
    request: DoseRequest
    response: DoseResponse


@dataclass(frozen=True, slots=True)
class AuditRecommendation:
    """Append the recommendation to the audit: every one, saved or not (stored as `request_json`,
    `response_json`)."""

    patient_label: str | None
    request: DoseRequest
    response: DoseResponse


@dataclass(frozen=True, slots=True)
class SetTimeZone:
    zone: str  # an IANA name


@dataclass(frozen=True, slots=True)
class ScheduleReminders:
    """Set the patient's reminders from the saved recommendation (replacing earlier ones)."""

    patient_label: str
    drug: Drug
    response: DoseResponse
    local_time: dt.time


Effect = SaveConsultation | AuditRecommendation | SetTimeZone | ScheduleReminders


@dataclass(slots=True)
class Outcome:
    replies: list[Reply] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
