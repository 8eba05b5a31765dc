"""Records that can be corrected: /patient LABEL's record with its buttons, and the corrections asked
through it (a result, dose or transfusion edited, the weight changed, the patient deleted).

Pure and synchronous, as every flow: the service (bot/service.py) reads the record and writes the
correction. A new value is read by the consultation's own parsers (flows/answers): the same typo, unit
slip, implausible value and date get the same specific reply, and the edit stays open until the value
is whole (or Cancel). Nothing is written before then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.numbers import fmt
from flows.answers.common import Confirm, Parsed
from flows.answers.dose import parse_dose
from flows.answers.labs import read_lab
from flows.answers.luspatercept import units_problem
from flows.answers.patient import parse_weighed, parse_weight
from flows.buttons import Choice, EditAction, RecordEditButton, Word
from flows.names import DRUG_NAMES
from flows.parsing import Problem, parse_date, parse_number, with_unit
from flows.replies import Button, Env, Reply
from flows.state import Answers, RecordEdit

RECORD_PAGE = 10  # entries per /patient page: each editable one gets a numbered button
CANCEL = Button("✖ Cancel", Word.CANCEL.value)
YES, NO, KEEP = "yes", "no", "keep"
WHAT = {"lab": "result", "dose": "dose", "transfusion": "transfusion"}


def back_to(label: str) -> Button:
    return Button("Back to record", RecordEditButton(EditAction.PAGE, label=label, page=1).encode())


def ask_label() -> Reply:
    return Reply("Which patient? Type /patient LABEL, e.g. /patient RX-12. /patients lists your labels.")


def unknown(label: str) -> Reply:
    return Reply(f"You have no patient labelled '{label}'. /patients lists your labels.")


def record(
    label: str,
    weight: tuple[str | None, dt.date | None],
    drug: str | None,
    entries: Sequence[tuple[dt.date, str, int, str]],
    page: tuple[int, int, int],
) -> Reply:
    """The record: weight, drug, a page of entries (newest first), the editable ones numbered; a numbered
    button per entry, Change weight, Delete patient, and Previous / Next."""
    number, pages, total = page
    kg, weighed = weight
    lines = [f"Record of {label}"]
    if kg is not None:
        lines.append(
            f"Weight: {fmt(Decimal(kg))} kg ({f'weighed {weighed}' if weighed else 'weighing date not known'})"
        )
    if drug is not None:
        lines.append(f"Treatment: {DRUG_NAMES.get(drug, drug)}")
    numbered: list[Button] = []
    for day, kind, row_id, text in entries:
        if kind == "recommendation":
            lines.append(f"   {day} {text}")
            continue
        numbered.append(Button(f"#{len(numbered) + 1}", RecordEditButton(EditAction.SHOW, kind, row_id).encode()))
        lines.append(f"#{len(numbered)} {day} {text}")
    if not entries:
        lines.append("Nothing is recorded yet.")
    if pages > 1:
        lines.append(f"Page {number} of {pages} ({total:,} entries; Next goes back in time).")
    lines.append(
        "Press a number to edit or delete that entry." if numbered else "No result, dose or transfusion to edit."
    )
    rows = [tuple(numbered[i : i + 5]) for i in range(0, len(numbered), 5)]
    pager = [
        Button(name, RecordEditButton(EditAction.PAGE, label=label, page=to).encode())
        for name, to in (("◀ Previous", number - 1), ("Next ▶", number + 1))
        if 1 <= to <= pages
    ]
    if pager:
        rows.append(tuple(pager))
    rows.append(
        (
            Button("Change weight", RecordEditButton(EditAction.WEIGHT, label=label).encode()),
            Button("Delete patient", RecordEditButton(EditAction.FORGET, label=label).encode()),
        )
    )
    return Reply("\n".join(lines), tuple(rows))


def describe(what: str, values: dict[str, Any]) -> str:
    """An entry in words: 'platelets 32 ×10^9/L of 2026-11-21'."""
    if what == "lab":
        return f"{values['test']} {with_unit(Decimal(str(values['value'])), values['unit'])} of {values['date']}"
    if what == "dose":
        drug = DRUG_NAMES.get(values["drug"], values["drug"])
        amount = f"{fmt(Decimal(str(values['amount'])))} {values['unit']}"
        return f"{drug} {amount} ({values['status']}) of {values['given_on']}"
    units = Decimal(str(values["units"]))
    return f"transfusion of {fmt(units)} unit{'' if units == 1 else 's'} of {values['date']}"


def entry(label: str, what: str, row_id: int, values: dict[str, Any]) -> Reply:
    """One entry, with Edit and Delete."""
    buttons = (
        Button("Edit", RecordEditButton(EditAction.EDIT, what, row_id).encode()),
        Button("Delete", RecordEditButton(EditAction.DELETE, what, row_id).encode()),
    )
    return Reply(f"{label}: {describe(what, values)}.", (buttons, (back_to(label),)))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v.isoformat() if isinstance(v, dt.date) else str(v) if isinstance(v, Decimal) else v
        for k, v in values.items()
    }


def _value_question(edit: RecordEdit) -> str:
    old = edit.old
    if edit.what == "lab":
        name = "platelet count" if old["test"] == "platelets" else "haemoglobin"
        return f"Type the new {name} (now {with_unit(Decimal(str(old['value'])), old['unit'])}), or Cancel."
    if edit.what == "dose":
        return f"Type the new dose in {old['unit']} (now {fmt(Decimal(str(old['amount'])))} {old['unit']}), or Cancel."
    if edit.what == "transfusion":
        return f"Type the new number of units (now {fmt(Decimal(str(old['units'])))}), or Cancel."
    if edit.what == "weight":
        now = f" (now {fmt(Decimal(str(old['weight_kg'])))} kg)" if old.get("weight_kg") else ""
        return f"Type {edit.label}'s new weight in kg{now}, or Cancel."
    return f"To confirm, type the label {edit.label} exactly. Cancel keeps the patient."


def _date_question(edit: RecordEdit) -> Reply:
    if edit.what == "weight":
        return Reply(
            "When was that weight measured? Type YYYY-MM-DD, or press Today or Not known.",
            ((Button("Today", Choice("today").encode()), Button("Not known", Choice("not known").encode())), (CANCEL,)),
        )
    day = edit.old["given_on" if edit.what == "dose" else "date"]
    return Reply(
        f"Its date? Keep {day}, or type YYYY-MM-DD.",
        ((Button(f"Keep {day}", Choice(KEEP).encode()), Button("Today", Choice("today").encode())), (CANCEL,)),
    )


def _ask(edit: RecordEdit, before: str = "") -> Reply:
    text = f"{before}\n{_value_question(edit)}" if before else _value_question(edit)
    return Reply(text, ((CANCEL,),), numeric=edit.what != "patient")


def start(
    label: str, what: str, row_id: int | None, old: dict[str, Any], indication: str | None = None
) -> tuple[RecordEdit, Reply]:
    """An edit opened: the value asked (or, deleting the patient, the label to type)."""
    edit = RecordEdit(
        label=label,
        what=what,
        row_id=row_id,
        old=_plain(old),
        indication=indication,
        step="label" if what == "patient" else "value",
    )
    if what == "patient":
        warning = (
            f"Deleting {label} removes its results, doses, transfusions, recommendations and reminders for good; "
            "the audit keeps only a note that a patient was deleted (no clinical data)."
        )
        return edit, _ask(edit, warning)
    opened = f"Editing {label}'s {describe(what, old)}." if what != "weight" else f"Changing {label}'s weight."
    return edit, _ask(edit, opened)


@dataclass
class Step:
    """What an answer to an edit did: the edit now (None: over), the replies, and the change to write."""

    edit: RecordEdit | None
    replies: list[Reply] = field(default_factory=list)
    commit: dict[str, Any] | None = None  # the columns' new values (what: 'patient' -> {} deletes it)


def answer(edit: RecordEdit, text: str, env: Env) -> Step:
    """A typed answer (or a pressed Yes / No / Keep / Today) to the edit's question."""
    typed = text.strip()
    if typed.lower() in ("cancel", "back"):
        return Step(None, [Reply("Nothing changed.", ((back_to(edit.label),),))])
    if edit.pending is not None:
        return _confirmed(edit, typed.lower())
    if edit.step == "label":
        if typed == edit.label:
            return Step(None, commit={})
        shown = f"'{typed}' is not {edit.label}" if typed else "No label typed"
        return Step(edit, [_ask(edit, f"{shown}: nothing deleted.")])
    if edit.step == "date":
        return _dated(edit, typed, env)
    parsed = _parse_value(edit, typed, env)
    if isinstance(parsed, Problem):
        return Step(edit, [_ask(edit, parsed.message)])
    if isinstance(parsed, Confirm):
        edit.pending = _plain(parsed.updates)
        buttons = ((Button("Yes", Choice(YES).encode()), Button("No", Choice(NO).encode())), (CANCEL,))
        return Step(edit, [Reply(parsed.question, buttons)])
    return _take(edit, parsed)


def _confirmed(edit: RecordEdit, typed: str) -> Step:
    pending, edit.pending = edit.pending or {}, None
    if typed in (YES, "y"):
        return _take(edit, pending)
    if typed in (NO, "n"):
        return Step(edit, [_ask(edit, "Not used.")])
    edit.pending = pending
    return Step(
        edit,
        [
            Reply(
                "Press Yes or No (or Cancel).",
                ((Button("Yes", Choice(YES).encode()), Button("No", Choice(NO).encode())), (CANCEL,)),
            )
        ],
    )


def _parse_value(edit: RecordEdit, typed: str, env: Env) -> Parsed:
    """The consultation's own reading of the value: the same replies to the same slips."""
    if edit.what == "lab":
        parsed = read_lab(typed, edit.old["test"], ("lab_value", "lab_unit"))
        if isinstance(parsed, dict):
            return {"value": parsed["lab_value"], "unit": parsed["lab_unit"]}
        if isinstance(parsed, Confirm):
            return Confirm(parsed.question, {"value": parsed.updates["lab_value"], "unit": parsed.updates["lab_unit"]})
        return parsed
    if edit.what == "dose":
        answers = Answers(drug=edit.old["drug"], indication=edit.indication)
        parsed = parse_dose(typed, answers, env)
        if isinstance(parsed, dict):
            return {"amount": parsed["dose_amount"]}
        if isinstance(parsed, Confirm):
            return Confirm(parsed.question, {"amount": parsed.updates["dose_amount"]})
        return parsed
    if edit.what == "transfusion":
        read = parse_number(
            typed, what="number of units", example="2", units={"": "", "u": "", "unit": "", "units": ""}
        )
        if isinstance(read, Problem):
            return read
        return units_problem(read[0]) or {"units": read[0]}
    parsed = parse_weight(typed, Answers(), env)
    if isinstance(parsed, Confirm):
        return Confirm(parsed.question, {"weight_kg": parsed.updates["weight_kg"]})
    return {"weight_kg": parsed["weight_kg"]} if isinstance(parsed, dict) else parsed


def _take(edit: RecordEdit, values: dict[str, Any]) -> Step:
    """The value taken; its date asked next."""
    edit.new = _plain(values)
    edit.step = "date"
    return Step(edit, [_date_question(edit)])


def _dated(edit: RecordEdit, typed: str, env: Env) -> Step:
    if edit.what == "weight":
        parsed = parse_weighed(typed, Answers(), env)
        if isinstance(parsed, Problem):
            return Step(edit, [Reply(parsed.message, _date_question(edit).buttons)])
        assert isinstance(parsed, dict)
        day = parsed["weight_date"]
        return Step(None, commit={"weight_kg": edit.new["weight_kg"], "weight_date": day})
    column = "given_on" if edit.what == "dose" else "date"
    if typed.lower() == KEEP:
        day = dt.date.fromisoformat(edit.old[column])
    else:
        what = {"lab": "date of the result", "dose": "date of the dose", "transfusion": "date of the transfusion"}
        found = parse_date(typed, env.today, what=what[edit.what])
        if isinstance(found, Problem):
            return Step(edit, [Reply(found.message, _date_question(edit).buttons)])
        day = found
    return Step(None, commit={**edit.new, column: day})


def corrected(edit: RecordEdit, new: dict[str, Any]) -> Reply:
    """A correction written: old and new, and where it is kept."""
    if edit.what == "weight":
        before = f"{fmt(Decimal(edit.old['weight_kg']))} kg" if edit.old.get("weight_kg") else "none"
        when = new["weight_date"] or "weighing date not known"
        after = f"{fmt(Decimal(str(new['weight_kg'])))} kg ({when})"
        text = f"{edit.label}'s weight changed: {before} → {after}."
    else:
        text = (
            f"Corrected {edit.label}: {describe(edit.what, edit.old)} → {describe(edit.what, edit.old | _plain(new))}."
        )
    return Reply(f"{text} The audit keeps the old and the new value.", ((back_to(edit.label),),))


def duplicate(edit: RecordEdit) -> Reply:
    what = WHAT.get(edit.what, edit.what)
    return Reply(
        f"{edit.label} already has that {what} on record: nothing changed. Delete one of them instead.",
        ((back_to(edit.label),),),
    )


def deleted(label: str, what: str, values: dict[str, Any]) -> Reply:
    return Reply(
        f"Deleted from {label}: {describe(what, _plain(values))}. The audit keeps the old value.",
        ((back_to(label),),),
    )


def gone() -> Reply:
    """A button of an entry (or patient) no longer there, or never the user's."""
    return Reply("That entry is no longer on record. /patients lists your patients.")


def patient_deleted(label: str) -> Reply:
    return Reply(
        f"{label} deleted, with its results, doses, transfusions, recommendations and reminders. "
        "The audit keeps a note that a patient was deleted, without clinical data.",
        ((Button("New consultation", Word.NEW.value),),),
    )


def undone(label: str, counts: dict[str, int], patient_deleted: bool) -> Reply:
    """What Undo took back, in words."""
    parts = [
        f"{count} {name if count != 1 else name.rstrip('s')}"
        for name, count in (
            ("results", counts["labs"]),
            ("doses", counts["doses"]),
            ("transfusions", counts["transfusions"]),
            ("reminders", counts["reminders"]),
        )
        if count
    ]
    taken = f" ({', '.join(parts)})" if parts else ""
    tail = f" {label} had been created by that save and is removed." if patient_deleted else ""
    return Reply(
        f"Undone: the save to {label}{taken}; its treatment is as it was before. The recommendation stays in the "
        f"audit, marked undone.{tail}",
        ((Button("New consultation", Word.NEW.value),),),
    )


NOTHING_TO_UNDO = Reply("Nothing to undo: no save in this chat since the last undo.")
