"""From a consultation's answers to a request of the dosing contract, and back from a fault."""

from __future__ import annotations

from typing import Any

from core.registry import rules_for
from flows.replies import Env
from flows.state import Answers

_REACTIONS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "mild": {"grade": 2},  # the worst of grades 1-2: any reaction blocks an increase (RULES.md 4)
    "severe": {"grade": 3},
    "hypersensitivity": {"grade": 3, "hypersensitivity": True},
}


def build_request(answers: Answers, env: Env) -> dict[str, Any]:
    """The contract's request; labs from the record first, so the newest (listed last) decides ties."""
    assert answers.drug is not None
    profile = rules_for(answers.drug).profile
    payload: dict[str, Any] = {
        "drug": answers.drug,
        "indication": answers.indication,
        "region": answers.region,
        "as_of": env.today,
    }
    patient: dict[str, Any] = {}
    if answers.weight_kg is not None:
        patient["weight_kg"] = answers.weight_kg
        patient["weight_date"] = answers.weight_date
    if answers.age_years is not None:
        patient["age_years"] = answers.age_years
    if answers.child_pugh is not None:
        patient["child_pugh"] = answers.child_pugh
    payload["patient"] = patient
    if answers.status in ("on", "held"):
        dose: dict[str, Any] = {
            "amount": answers.dose_amount,
            "unit": profile.dosing_unit,
            "since": answers.dose_since,
            "last_given": answers.last_given,
        }
        if answers.doses_at_level is not None:
            dose["doses_at_level"] = answers.doses_at_level
        payload["current_dose"] = dose
    payload["on_hold"] = answers.status == "held"
    new: list[tuple[Any, Any, Any]] = []
    if answers.previous_value is not None and answers.previous_date is not None:
        new.append((answers.previous_value, answers.previous_unit, answers.previous_date))
    if answers.lab_value is not None and answers.lab_date is not None:
        new.append((answers.lab_value, answers.lab_unit, answers.lab_date))
    test = profile.deciding_test
    entered = {(day, value) for value, _, day in new}
    labs = [
        {"test": lab.test, "value": lab.value, "unit": lab.unit, "date": lab.date}
        # the record's results and the counts added since `since` (the stable rule reads them all)
        for lab in sorted([*answers.history_labs, *answers.added_labs], key=lambda lab: lab.date)
        if (lab.date, lab.value) not in entered
    ]
    labs += [{"test": test, "value": value, "unit": unit, "date": day} for value, unit, day in new]
    payload["labs"] = labs
    # Only luspatercept reads them; a list typed before the drug was changed is not sent with another drug.
    transfused = answers.transfusions if answers.drug == "luspatercept" else []
    payload["transfusions"] = [{"date": t.date, "units": t.units} for t in transfused]
    if answers.baseline is not None:
        payload["baseline_rbc_units_per_12_weeks"] = answers.baseline
    if answers.procedure_date is not None:
        payload["procedure_date"] = answers.procedure_date
    if answers.adverse is not None:
        payload["adverse_reaction"] = _REACTIONS[answers.adverse]
    return payload


_FIELD_STEPS = (
    ("patient.weight", "weight"),
    ("patient.age", "age"),
    ("patient.child_pugh", "child_pugh"),
    ("current_dose.since", "dose_since"),
    ("current_dose.last_given", "last_given"),
    ("current_dose.doses_at_level", "doses_at_level"),
    ("current_dose", "dose_amount"),
    ("on_hold", "status"),
    ("labs", "lab_value"),
    ("transfusions", "transfusions"),
    ("baseline", "baseline"),
    ("procedure_date", "procedure_date"),
    ("adverse_reaction", "adverse"),
    ("indication", "indication"),
    ("region", "region"),
)


def step_for_field(field: str | None) -> str:
    """The question to ask again for a contract field the core refused."""
    for prefix, step in _FIELD_STEPS:
        if field is not None and field.startswith(prefix):
            return step
    return "drug"
