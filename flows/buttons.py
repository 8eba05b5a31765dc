"""Button data: the one place that writes and reads what a button carries back (Telegram's callback data).

Each kind is a small frozen dataclass with `encode()`; `decode()` reads any datum back into one of
them, or None for anything this assistant never sends (forged, damaged, from an older release), so
a caller answers "I did not understand that button" and never raises. The formats, all under
Telegram's 64 bytes:

- `v:<value>`                       `Choice`: an answer to the question on screen (a value, a zone, a time)
- `fu:<label>`, `fc:<label>`, `hi:<label>`, `tr:<label>`   `RecordButton`: a patient's follow-up, full consultation,
  history, trend chart
- `oc:<action>:<occurrence>[:<YYYYMMDD>]`   `OccurrenceAnswer`: an answer to a reminder (the day: a late Taken)
- `rm:<action>:<reminder>[:<HHMM>]`         `ReminderAction`: /reminders' pause, resume, stop, time, set time
- `edit:<step>`                     `Edit`: a review screen's Edit button
- `pg:p:<page>`, `pg:h:<page>:<label>`   `PageButton`: a page of /patients, or of a patient's /history
- `pr:<s|e|d>:<l|d|t>:<id>`, `pr:<w|x>:<label>`, `pr:p:<page>:<label>`   `RecordEditButton`: /patient's
  entry shown, edited or deleted; Change weight; Delete patient; a page of the record
- a bare word (`back`, `why`, ...)   `Word`: navigation and the recommendation's buttons
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

MAX_BYTES = 64  # Telegram's limit for callback data
MAX_ID_DIGITS = 18  # a database id: 18 digits fit any 64-bit integer column


class AnswerAction(StrEnum):
    """What a reminder's button answers (RULES.md 6): the letters are the stored button data."""

    TAKEN = "t"
    SKIP = "s"
    SNOOZE = "z"
    NOTED = "n"  # a blood-test reminder
    GIVEN = "g"  # given today, after the missed-dose guidance
    ON_DAY = "d"  # a late Taken: taken on the day it carries
    YES = "y"  # an unconfirmed dose: taken after all
    NO = "x"  # an unconfirmed dose: not taken


class ManageAction(StrEnum):
    """The /reminders buttons of one reminder."""

    PAUSE = "p"
    RESUME = "r"
    STOP = "x"
    ASK_TIME = "t"  # which new time? (the choices are `SET_TIME` buttons)
    SET_TIME = "a"  # carries the new local time


class RecordKind(StrEnum):
    """The buttons of a patient's record message (and the follow-up button of a dose reminder)."""

    FOLLOWUP = "fu"  # same regimen, new result
    FULL = "fc"  # a full consultation, the record's answers offered as Keep
    HISTORY = "hi"
    TREND = "tr"  # the trend chart (also on the recommendation card)


class PageList(StrEnum):
    """The lists the chat shows in pages."""

    PATIENTS = "p"  # /patients
    HISTORY = "h"  # /history LABEL


class EditAction(StrEnum):
    """The buttons of /patient LABEL (flows/records.py)."""

    SHOW = "s"  # an entry, with Edit and Delete
    EDIT = "e"
    DELETE = "d"
    WEIGHT = "w"  # change the weight
    FORGET = "x"  # delete the patient (confirmed by typing the label)
    PAGE = "p"  # a page of the record


ENTRY_KINDS = {"l": "lab", "d": "dose", "t": "transfusion"}  # an entry's kind as written in its button
_ENTRY_LETTERS = {kind: letter for letter, kind in ENTRY_KINDS.items()}


class Word(StrEnum):
    """Buttons that carry a bare word: navigation and the recommendation screen."""

    BACK = "back"
    CANCEL = "cancel"
    HELP = "help"
    NEW = "new"
    CONFIRM = "confirm"
    WHY = "why"
    SAVE = "save"
    REMIND = "remind"
    REMINDERS = "reminders"  # answered by the service as /reminders
    PATIENTS = "patients"
    UNDO = "undo"  # right after Save to patient: that save taken back (answered by the service)


_E = TypeVar("_E", bound=StrEnum)


def _member(kind: type[_E], text: str) -> _E | None:
    try:
        return kind(text)
    except ValueError:
        return None


def _fits(data: str) -> bool:
    return len(data.encode("utf-8", "surrogatepass")) <= MAX_BYTES and data.isprintable()


def _number(text: str) -> int | None:
    """A database id as written in button data: ASCII digits only (no sign, no '1.5', no '١')."""
    if not text or len(text) > MAX_ID_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


@dataclass(frozen=True, slots=True)
class Choice:
    """An answer to the question on screen, as if typed."""

    value: str

    def encode(self) -> str:
        return f"v:{self.value}"


@dataclass(frozen=True, slots=True)
class RecordButton:
    kind: RecordKind
    label: str  # the patient's label

    def encode(self) -> str:
        return f"{self.kind}:{self.label}"


@dataclass(frozen=True, slots=True)
class OccurrenceAnswer:
    action: AnswerAction
    occurrence_id: int
    day: dt.date | None = None  # ON_DAY only: the day it was taken

    def __post_init__(self) -> None:
        if (self.action is AnswerAction.ON_DAY) != (self.day is not None):
            raise ValueError("a day goes with ON_DAY and only with it")

    def encode(self) -> str:
        tail = f":{self.day:%Y%m%d}" if self.day is not None else ""
        return f"oc:{self.action}:{self.occurrence_id}{tail}"


@dataclass(frozen=True, slots=True)
class ReminderAction:
    action: ManageAction
    reminder_id: int
    at: dt.time | None = None  # SET_TIME only: the new local time (whole minutes)

    def __post_init__(self) -> None:
        if (self.action is ManageAction.SET_TIME) != (self.at is not None):
            raise ValueError("a time goes with SET_TIME and only with it")

    def encode(self) -> str:
        tail = f":{self.at:%H%M}" if self.at is not None else ""
        return f"rm:{self.action}:{self.reminder_id}{tail}"


@dataclass(frozen=True, slots=True)
class Edit:
    step: str  # a step's name (flows.steps)

    def encode(self) -> str:
        return f"edit:{self.step}"


@dataclass(frozen=True, slots=True)
class PageButton:
    """Next or Previous on a list shown in pages: the page to show, read afresh when pressed (a page
    past the end, from a message sent before the list changed, shows the last page)."""

    listing: PageList
    page: int  # 1-based
    label: str = ""  # HISTORY: the patient's label; PATIENTS: none

    def __post_init__(self) -> None:
        if self.page < 1 or (self.listing is PageList.HISTORY) != bool(self.label):
            raise ValueError("a page from 1, and a label with HISTORY and only with it")

    def encode(self) -> str:
        tail = f":{self.label}" if self.label else ""
        return f"pg:{self.listing}:{self.page}{tail}"


@dataclass(frozen=True, slots=True)
class RecordEditButton:
    """A button of /patient LABEL: an entry (`kind`, `row_id`) shown, edited or deleted; the weight or the
    patient (`label`); or a page of the record (`page`, `label`)."""

    action: EditAction
    kind: str = ""  # lab | dose | transfusion: SHOW, EDIT and DELETE only
    row_id: int = 0
    label: str = ""  # WEIGHT, FORGET and PAGE only
    page: int = 0  # PAGE only

    def __post_init__(self) -> None:
        entry = self.action in (EditAction.SHOW, EditAction.EDIT, EditAction.DELETE)
        if (
            entry != (self.kind in _ENTRY_LETTERS)
            or entry == bool(self.label)
            or (self.action is EditAction.PAGE) != (self.page >= 1)
        ):
            raise ValueError("an entry's kind and id, or a label (with a page from 1 for PAGE)")

    def encode(self) -> str:
        if self.kind:
            return f"pr:{self.action}:{_ENTRY_LETTERS[self.kind]}:{self.row_id}"
        if self.action is EditAction.PAGE:
            return f"pr:{self.action}:{self.page}:{self.label}"
        return f"pr:{self.action}:{self.label}"


ButtonData = Choice | RecordButton | OccurrenceAnswer | ReminderAction | Edit | PageButton | RecordEditButton | Word


def _day(text: str) -> dt.date | None:
    if len(text) != 8 or not (text.isascii() and text.isdigit()):
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _time(text: str) -> dt.time | None:
    if len(text) != 4 or not (text.isascii() and text.isdigit()):
        return None
    hour, minute = int(text[:2]), int(text[2:])
    return dt.time(hour, minute) if hour < 24 and minute < 60 else None


def _occurrence(parts: list[str]) -> OccurrenceAnswer | None:
    if len(parts) not in (2, 3):
        return None
    action, number = _member(AnswerAction, parts[0]), _number(parts[1])
    day = _day(parts[2]) if len(parts) == 3 else None
    if (
        action is None
        or number is None
        or (len(parts) == 3 and day is None)
        or (action is AnswerAction.ON_DAY) != (day is not None)
    ):
        return None
    return OccurrenceAnswer(action, number, day)


def _reminder(parts: list[str]) -> ReminderAction | None:
    if len(parts) not in (2, 3):
        return None
    action, number = _member(ManageAction, parts[0]), _number(parts[1])
    at = _time(parts[2]) if len(parts) == 3 else None
    if (
        action is None
        or number is None
        or (len(parts) == 3 and at is None)
        or (action is ManageAction.SET_TIME) != (at is not None)
    ):
        return None
    return ReminderAction(action, number, at)


def _page(rest: str) -> PageButton | None:
    listing_text, _, tail = rest.partition(":")
    page_text, _, label = tail.partition(":")
    listing, page = _member(PageList, listing_text), _number(page_text)
    if listing is None or page is None or page < 1 or (listing is PageList.HISTORY) != bool(label):
        return None
    return PageButton(listing, page, label)


def _record_edit(rest: str) -> RecordEditButton | None:
    action_text, _, tail = rest.partition(":")
    action = _member(EditAction, action_text)
    if action is None or not tail:
        return None
    first, _, second = tail.partition(":")
    if action in (EditAction.SHOW, EditAction.EDIT, EditAction.DELETE):
        number = _number(second)
        return (
            RecordEditButton(action, ENTRY_KINDS[first], number)
            if first in ENTRY_KINDS and number is not None
            else None
        )
    if action is EditAction.PAGE:
        page = _number(first)
        return RecordEditButton(action, label=second, page=page) if page and second else None
    return RecordEditButton(action, label=tail)


def decode(data: str | None) -> ButtonData | None:
    """The button a datum stands for; None if it is not one this assistant sends. Never raises."""
    if not data or not _fits(data):
        return None
    word = _member(Word, data)
    if word is not None:
        return word
    prefix, colon, rest = data.partition(":")
    if not colon:
        return None
    if prefix == "v":
        return Choice(rest)
    kind = _member(RecordKind, prefix)
    if kind is not None:
        return RecordButton(kind, rest) if rest else None
    if prefix == "oc":
        return _occurrence(rest.split(":"))
    if prefix == "rm":
        return _reminder(rest.split(":"))
    if prefix == "edit":
        return Edit(rest) if rest else None
    if prefix == "pg":
        return _page(rest)
    if prefix == "pr":
        return _record_edit(rest)
    return None


def occurrence_answer(data: str | None) -> OccurrenceAnswer | None:
    """`decode` for a reminder's answer only."""
    found = decode(data)
    return found if isinstance(found, OccurrenceAnswer) else None


def page_button(data: str | None) -> PageButton | None:
    """`decode` for a page button only."""
    found = decode(data)
    return found if isinstance(found, PageButton) else None


def reminder_action(data: str | None) -> ReminderAction | None:
    """`decode` for a /reminders button only."""
    found = decode(data)
    return found if isinstance(found, ReminderAction) else None


def record_edit_button(data: str | None) -> RecordEditButton | None:
    """`decode` for a /patient button only."""
    found = decode(data)
    return found if isinstance(found, RecordEditButton) else None
