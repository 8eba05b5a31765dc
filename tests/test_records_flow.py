"""The correction flow (flows/records.py), without a database: each kind of value is read by the
consultation's parsers, a slip gets its specific reply and the edit stays open, nothing is written
(`commit`) until the value and its date are whole; /patient's buttons read back as written; a command
typed during an edit leaves it (bot/record_edits.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bot.record_edits import answers_edit
from flows import records
from flows.buttons import EditAction, RecordEditButton, decode
from flows.replies import Env
from flows.routes import route
from flows.state import RecordEdit

ENV = Env(dt.date(2026, 11, 22))
LAB = {"test": "platelets", "value": "32", "unit": "10^9/L", "date": dt.date(2026, 11, 21)}
DOSE = {"drug": "romiplostim", "amount": "3", "unit": "mcg/kg", "given_on": dt.date(2026, 11, 15), "status": "given"}
TRANSFUSION = {"units": "1", "date": dt.date(2026, 11, 8)}


def run(edit: RecordEdit, *typed: str) -> records.Step:
    step = records.Step(edit)
    for text in typed:
        assert step.edit is not None, f"the edit ended before {text!r}"
        step = records.answer(step.edit, text, ENV)
    return step


@pytest.mark.parametrize(
    ("what", "old", "typed", "commit"),
    [
        ("lab", LAB, ["45", "keep"], {"value": "45", "unit": "10^9/L", "date": dt.date(2026, 11, 21)}),
        ("lab", LAB, ["45000/µL", "yesterday"], {"value": "45000", "unit": "/uL", "date": dt.date(2026, 11, 21)}),
        ("lab", LAB, ["45000", "yes", "2026-11-20"], {"value": "45", "unit": "10^9/L", "date": dt.date(2026, 11, 20)}),
        ("dose", DOSE, ["4", "keep"], {"amount": "4", "given_on": dt.date(2026, 11, 15)}),
        ("dose", DOSE, ["12", "yes", "today"], {"amount": "12", "given_on": dt.date(2026, 11, 22)}),
        ("transfusion", TRANSFUSION, ["2 units", "keep"], {"units": "2", "date": dt.date(2026, 11, 8)}),
        (
            "weight",
            {"weight_kg": "72", "weight_date": None},
            ["74", "not known"],
            {"weight_kg": "74", "weight_date": None},
        ),
        ("weight", {"weight_kg": "72"}, ["160 lb", "yes", "today"], {"weight_kg": "72.6", "weight_date": ENV.today}),
    ],
)
def test_a_value_and_its_date_make_the_change(what: str, old: dict[str, Any], typed: list[str], commit: dict[str, Any]):
    edit, _ = records.start("RX-12", what, 7, old, "itp")
    step = run(edit, *typed)
    assert step.edit is None
    assert step.commit == commit


@pytest.mark.parametrize(
    ("what", "old", "typed", "reply"),
    [
        (
            "lab",
            LAB,
            "4o",
            "I don't know the unit 'o' for the platelet count. Use one of: /µL, G/L, ×10^3/µL, ×10^9/L.",
        ),
        (
            "lab",
            LAB,
            "2026-11-20",
            "'2026-11-20' looks like a date; this question asks for the platelet count, e.g. 32.",
        ),
        ("lab", LAB, "5000000", "A platelet count of 5000000 ×10^9/L is not possible (must be 0 to 3000 ×10^9/L)."),
        ("dose", DOSE, "3 mg", "Romiplostim is dosed in mcg/kg, not mg. Type the dose in mcg/kg, e.g. 3."),
        ("dose", DOSE, "0", "The dose must be more than 0."),
        ("transfusion", TRANSFUSION, "25", "25 units is not a plausible transfusion; type 1 to 20 units."),
        ("weight", {}, "0.2", "A weight of 0.2 kg is not possible (1 to 350 kg). Type the weight in kg."),
    ],
)
def test_a_slip_is_named_and_the_edit_stays_open(what: str, old: dict[str, Any], typed: str, reply: str):
    edit, _ = records.start("RX-12", what, 7, old, "itp")
    step = run(edit, typed)
    assert step.edit is not None
    assert (step.edit.step, step.commit) == ("value", None)
    assert step.replies[0].text.split("\n")[0] == reply


def test_a_bad_date_is_named_and_the_value_kept():
    edit, _ = records.start("RX-12", "lab", 7, LAB)
    step = run(edit, "45", "2026-02-30")
    assert step.replies[0].text == "2026-02-30 is not a real date. Write it as YYYY-MM-DD, e.g. 2026-11-22."
    assert step.edit is not None
    assert step.edit.new == {"value": "45", "unit": "10^9/L"}
    assert run(step.edit, "tomorrow").replies[0].text == (
        "2026-11-23 is in the future; the date of the result must be today or earlier."
    )


def test_the_patient_is_deleted_only_by_its_label_typed_exactly_and_cancel_changes_nothing():
    edit, _ = records.start("RX-12", "patient", 7, {})
    for wrong in ("rx-12", "RX-1", ""):
        step = run(edit, wrong)
        assert step.commit is None
        assert step.edit is not None
    assert run(edit, "RX-12").commit == {}
    cancelled = run(edit, "cancel")
    assert (cancelled.edit, cancelled.commit, cancelled.replies[0].text) == (None, None, "Nothing changed.")


@pytest.mark.parametrize(
    "button",
    [
        RecordEditButton(EditAction.SHOW, "lab", 12),
        RecordEditButton(EditAction.EDIT, "dose", 10**17),
        RecordEditButton(EditAction.DELETE, "transfusion", 0),
        RecordEditButton(EditAction.WEIGHT, label="bed 4"),
        RecordEditButton(EditAction.FORGET, label="RX-12"),
        RecordEditButton(EditAction.PAGE, label="RX-12", page=3),
    ],
)
def test_the_record_buttons_read_back_as_written(button: RecordEditButton):
    assert decode(button.encode()) == button
    assert len(button.encode().encode()) <= 64


@pytest.mark.parametrize("data", ["pr:s:q:1", "pr:e:l:", "pr:e:l:1.5", "pr:p:0:RX-12", "pr:p:2:", "pr:w:", "pr:z:1"])
def test_damaged_record_buttons_decode_to_none(data: str):
    assert decode(data) is None


@pytest.mark.parametrize(
    ("text", "button", "answers"),
    [("45", None, True), (None, "v:yes", True), ("cancel", None, True), (None, "cancel", True),
     ("/patients", None, False), ("/frobnicate", None, False), (None, "pr:s:l:1", False), (None, "undo", False)],
)  # fmt: skip
def test_a_command_or_another_button_leaves_the_edit(text: str | None, button: str | None, answers: bool):
    assert answers_edit(route(text, button)) is answers


def test_the_record_numbers_its_editable_entries():
    entries = [
        (dt.date(2026, 11, 22), "recommendation", 3, "recommendation: increase 4 mcg/kg (romiplostim.increase)"),
        (dt.date(2026, 11, 21), "lab", 8, "platelets 32 10^9/L"),
    ]
    reply = records.record("RX-12", ("72", None), "romiplostim", entries, (1, 1, 2))
    assert reply.text == (
        "Record of RX-12\nWeight: 72 kg (weighing date not known)\nTreatment: Romiplostim\n"
        "   2026-11-22 recommendation: increase 4 mcg/kg (romiplostim.increase)\n#1 2026-11-21 platelets 32 10^9/L\n"
        "Press a number to edit or delete that entry."
    )
    assert [[b.data for b in row] for row in reply.buttons] == [["pr:s:l:8"], ["pr:w:RX-12", "pr:x:RX-12"]]


def test_a_long_record_is_shown_in_pages_with_previous_and_next():
    entries = [(dt.date(2026, 11, 20 - n), "dose", 100 + n, "dose given: romiplostim 3 mcg/kg") for n in range(10)]
    reply = records.record("RX-12", (None, None), None, entries, (2, 3, 25))
    assert reply.text.splitlines()[-2:] == [
        "Page 2 of 3 (25 entries; Next goes back in time).",
        "Press a number to edit or delete that entry.",
    ]
    assert [[b.label for b in row] for row in reply.buttons] == [
        ["#1", "#2", "#3", "#4", "#5"],
        ["#6", "#7", "#8", "#9", "#10"],
        ["◀ Previous", "Next ▶"],
        ["Change weight", "Delete patient"],
    ]
    assert [b.data for b in reply.buttons[2]] == ["pr:p:1:RX-12", "pr:p:3:RX-12"]
