"""Button data (flows/buttons.py): every kind reads back as written, the formats are the ones already
sent (old buttons in chats still work), and anything else decodes to None, never an exception."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.buttons import (
    MAX_BYTES,
    AnswerAction,
    ButtonData,
    Choice,
    Edit,
    ManageAction,
    OccurrenceAnswer,
    RecordButton,
    RecordKind,
    ReminderAction,
    Word,
    decode,
    occurrence_answer,
    reminder_action,
)

IDS = st.integers(min_value=0, max_value=10**18 - 1)
DAYS = st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(9999, 12, 31))
TIMES = st.times().map(lambda t: t.replace(second=0, microsecond=0))
# What a label or a value may be: printable, short enough for the 64 bytes with the prefix.
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=20).filter(
    lambda s: s.isprintable() and len(s.encode()) <= MAX_BYTES - len("edit:")
)


def _occurrences() -> st.SearchStrategy[OccurrenceAnswer]:
    plain = st.builds(OccurrenceAnswer, st.sampled_from([a for a in AnswerAction if a is not AnswerAction.ON_DAY]), IDS)
    on_day = st.builds(OccurrenceAnswer, st.just(AnswerAction.ON_DAY), IDS, DAYS)
    return plain | on_day


def _reminders() -> st.SearchStrategy[ReminderAction]:
    plain = st.builds(ReminderAction, st.sampled_from([a for a in ManageAction if a is not ManageAction.SET_TIME]), IDS)
    return plain | st.builds(ReminderAction, st.just(ManageAction.SET_TIME), IDS, TIMES)


BUTTONS: st.SearchStrategy[ButtonData] = st.one_of(
    st.builds(Choice, TEXT),
    st.builds(RecordButton, st.sampled_from(list(RecordKind)), TEXT),
    _occurrences(),
    _reminders(),
    st.builds(Edit, st.from_regex(r"[a-z_]{1,20}", fullmatch=True)),
    st.sampled_from(list(Word)),
)


@given(BUTTONS)
def test_every_button_reads_back_as_written(button: ButtonData) -> None:
    data = button.encode() if not isinstance(button, Word) else str(button)
    assert len(data.encode()) <= MAX_BYTES
    assert decode(data) == button


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("oc:t:5", OccurrenceAnswer(AnswerAction.TAKEN, 5)),
        ("oc:n:12", OccurrenceAnswer(AnswerAction.NOTED, 12)),
        ("oc:d:7:20261123", OccurrenceAnswer(AnswerAction.ON_DAY, 7, dt.date(2026, 11, 23))),
        ("oc:x:3", OccurrenceAnswer(AnswerAction.NO, 3)),
        ("rm:p:4", ReminderAction(ManageAction.PAUSE, 4)),
        ("rm:x:4", ReminderAction(ManageAction.STOP, 4)),
        ("rm:a:4:0830", ReminderAction(ManageAction.SET_TIME, 4, dt.time(8, 30))),
        ("fu:RX-12", RecordButton(RecordKind.FOLLOWUP, "RX-12")),
        ("fc:RX-12", RecordButton(RecordKind.FULL, "RX-12")),
        ("hi:RX 1", RecordButton(RecordKind.HISTORY, "RX 1")),
        ("v:Europe/Berlin", Choice("Europe/Berlin")),
        ("v:08:00", Choice("08:00")),
        ("edit:weight", Edit("weight")),
        ("why", Word.WHY),
        ("reminders", Word.REMINDERS),
    ],
)
def test_the_formats_already_in_chats_still_read(data: str, expected: ButtonData) -> None:
    """Buttons sent before this module keep their meaning: the bytes did not change."""
    assert decode(data) == expected
    assert (expected.encode() if not isinstance(expected, Word) else str(expected)) == data


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "oc:",
        "oc:x",
        "oc:t",
        "oc:q:5",  # no such answer
        "oc:t:",
        "oc:t:-1",
        "oc:t:1.5",
        "oc:t:١٢",  # digits, but not ASCII ones
        "oc:t:" + "9" * 19,  # over 64 bits
        "oc:t:5:20261123",  # a day on a plain Taken
        "oc:d:5",  # a late Taken without its day
        "oc:d:5:20261399",  # no such date
        "oc:d:5:2026112",
        "oc:t:5:x:y",
        "rm:",
        "rm:s:1",  # no such action
        "rm:a:1",  # a new time without the time
        "rm:a:1:2400",
        "rm:a:1:0860",
        "rm:p:1:0800",
        "rm:p:abc",
        "fu:",
        "hi:",
        "edit:",
        "zz:1",
        "nonsense",
        "v:\x00",
        "x" * (MAX_BYTES + 1),
        "v:" + "é" * 32,  # 66 bytes in UTF-8
    ],
)
def test_anything_else_decodes_to_none(data: str | None) -> None:
    assert decode(data) is None


@given(st.text(max_size=80))
def test_decoding_never_raises_and_a_result_reads_back(data: str) -> None:
    found = decode(data)
    if found is not None:
        assert decode(found.encode() if not isinstance(found, Word) else str(found)) == found


def test_the_typed_readers_take_only_their_own_kind() -> None:
    assert occurrence_answer("oc:s:9") == OccurrenceAnswer(AnswerAction.SKIP, 9)
    assert occurrence_answer("rm:p:9") is None
    assert reminder_action("rm:r:9") == ReminderAction(ManageAction.RESUME, 9)
    assert reminder_action("oc:t:9") is None


def test_a_day_or_time_goes_only_with_its_action() -> None:
    with pytest.raises(ValueError, match="ON_DAY"):
        OccurrenceAnswer(AnswerAction.TAKEN, 1, dt.date(2026, 11, 22))
    with pytest.raises(ValueError, match="SET_TIME"):
        ReminderAction(ManageAction.SET_TIME, 1)
