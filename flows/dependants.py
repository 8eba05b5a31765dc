"""Answers that others derive from: what each step's answer is made of (`FIELDS`), which steps are
asked again when it changes (`DEPENDANTS`), and the reopening itself (`reopen_dependants`). A changed
dose re-asks "since", which re-asks the counts and transfusions since then.
"""

from __future__ import annotations

from typing import Any

from flows.answers import luspatercept
from flows.state import Answers
from flows.steps import STEP_BY_NAME

# What each step's answer is made of (a change to any of these is a change of the answer).
FIELDS: dict[str, tuple[str, ...]] = {
    "drug": ("drug",),
    "indication": ("indication",),
    "region": ("region",),
    "patient": ("record",),  # another record (a renamed new patient keeps every answer)
    "weight": ("weight_kg",),
    "age": ("age_years", "adult"),
    "weight_date": ("weight_date", "weight_date_unknown"),
    "child_pugh": ("child_pugh", "child_pugh_unknown"),
    "procedure_date": ("procedure_date",),
    "status": ("status",),
    "dose_amount": ("dose_amount",),
    "dose_since": ("dose_since",),
    "last_given": ("last_given",),
    "doses_at_level": ("doses_at_level", "doses_estimated"),
    "lab_value": ("lab_value", "lab_unit", "lab_skipped"),
    "lab_date": ("lab_date",),
    "previous_value": ("previous_value", "previous_unit", "previous_skipped"),
    "previous_date": ("previous_date",),
    "counts": ("added_labs",),
    "transfusions": ("transfusions",),
    "baseline": ("baseline", "baseline_skipped"),
    "adverse": ("adverse",),
}

# step -> the steps whose answers were given relative to it, and are asked again when it changes
# (transitively: a changed dose re-asks "since", which re-asks the counts and transfusions since then).
DEPENDANTS: dict[str, tuple[str, ...]] = {
    "drug": ("indication", "region", "child_pugh", "procedure_date", "status", "lab_value", "baseline", "adverse"),
    "procedure_date": ("counts",),  # lusutrombopag: the pre-procedure window moves with it
    "patient": ("weight", "age", "status", "counts", "transfusions"),  # what the record offered
    "weight": ("weight_date",),
    "status": ("dose_amount", "counts", "transfusions"),
    "dose_amount": ("dose_since", "last_given", "doses_at_level"),  # a new level starts its own history
    "dose_since": ("last_given", "doses_at_level", "counts", "transfusions"),
    "last_given": ("doses_at_level",),
    "lab_value": ("lab_date", "previous_value", "counts"),
    "lab_date": ("previous_value", "counts", "transfusions"),
    "previous_value": ("previous_date",),
}

# How a step is asked again: its answer cleared, except lists whose entries stay offered as they were.
_KEEP_ENTRIES = {"counts": {"counts_done": False}, "transfusions": {"transfusions_done": False}}


def _reopening(step: str) -> dict[str, Any]:
    if step in _KEEP_ENTRIES:
        return _KEEP_ENTRIES[step]
    return {name: Answers.model_fields[name].get_default(call_default_factory=True) for name in FIELDS[step]}


def dependants_of(step: str) -> list[str]:
    """Every step derived from `step`, directly or through another, in the order they are asked."""
    found: set[str] = set()
    todo = list(DEPENDANTS.get(step, ()))
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += DEPENDANTS.get(name, ())
    return [name for name in STEP_BY_NAME if name in found]


def reopen_dependants(before: Answers, after: Answers, step: str, updates: dict[str, Any]) -> Answers:
    """`after` with the dependants of `step` asked again when its answer changed.

    A field the same answer set (an "As saved" status sets the dose and its dates) is kept.
    """
    if all(getattr(before, name) == getattr(after, name) for name in FIELDS[step]):
        return after
    names = dependants_of(step)
    # Transfusions follow the result's date only where it moves their period's start (TRANSFUSION_FREE_DAYS before the
    # haemoglobin, if earlier than `since`): a new value re-asks its date, which decides that.
    period_kept = step == "lab_value" or (
        step == "lab_date" and luspatercept.transfusion_start(before) == luspatercept.transfusion_start(after)
    )
    if "transfusions" in names and period_kept:
        names.remove("transfusions")
    changes: dict[str, Any] = {}
    for name in names:
        changes |= {field: default for field, default in _reopening(name).items() if field not in updates}
    return after.model_copy(update=changes) if changes else after


assert set(FIELDS) == set(STEP_BY_NAME)
assert all(name in STEP_BY_NAME for names in DEPENDANTS.values() for name in names)
