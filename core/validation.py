"""Checks that need more than one field (drug-specific shape), and the plausibility bounds.

Order follows the contract: every `invalid_request` before any `implausible_value`, each in
field order, so the first fault reported is the first one a reader of the request meets.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.errors import RequestError
from core.models import Lab, install_shape_check
from core.numbers import fmt
from core.registry import rules_for
from core.units import PLAUSIBILITY, UNITS_BY_TEST

if TYPE_CHECKING:
    from core.framework import Context


def shape_fault(field: str, value: Any, earlier: dict[str, Any]) -> tuple[str, str] | None:
    """The drug-dependent fault of one top-level field, given the fields validated before it.

    Called from the request model's validators, so these faults rank with pydantic's own in
    field order (the contract's rule for several faults in one request).
    """
    drug = earlier.get("drug")
    if drug is None:  # the drug itself was at fault: reported already
        return None
    profile = rules_for(drug).profile
    as_of: dt.date | None = earlier.get("as_of")
    if field == "indication" and value not in profile.indications:
        return "indication", (
            f"'{value}' is not an indication of {drug}; expected one of {', '.join(profile.indications)}"
        )
    if field == "region" and value is not None and value not in profile.regions:
        return (
            "region",
            f"'{value}' is not a region with rules for {drug}; expected one of {', '.join(profile.regions)}",
        )
    if field == "patient":
        if profile.weight_based and value.weight_kg is None:
            return "patient.weight_kg", f"required for {drug}, which is dosed by body weight"
        if as_of is not None and value.weight_date is not None and value.weight_date > as_of:
            return "patient.weight_date", f"{value.weight_date} is after as_of {as_of}"
    if field == "current_dose" and value is not None:
        if value.unit != profile.dosing_unit:
            return "current_dose.unit", f"{drug} is dosed in {profile.dosing_unit}, not {value.unit}"
        if as_of is not None and value.since > as_of:
            return "current_dose.since", f"{value.since} is after as_of {as_of}"
        if as_of is not None and value.last_given > as_of:
            return "current_dose.last_given", f"{value.last_given} is after as_of {as_of}"
        if value.last_given < value.since:
            return "current_dose.last_given", (
                f"{value.last_given} is before since {value.since} (the first dose at this level)"
            )
    if field == "on_hold" and value:
        if earlier.get("current_dose") is None and "current_dose" in earlier:
            return "on_hold", "on hold needs current_dose: the dose before the interruption"
        if drug == "lusutrombopag":
            return "on_hold", "a lusutrombopag course is not put on hold"
    if field in ("labs", "transfusions") and as_of is not None:
        for i, entry in enumerate(value):
            if entry.date > as_of:
                return f"{field}[{i}].date", f"{entry.date} is after as_of {as_of}"
    if field == "procedure_date" and value is None and drug == "lusutrombopag":
        return "procedure_date", "required for lusutrombopag, which is timed by the procedure"
    return None


def check_plausibility(ctx: Context) -> None:
    """Values outside the bounds of RULES.md section 0: `implausible_value`, naming the likely slip.

    The labs were converted and checked in the context's one pass over them.
    """
    patient = ctx.request.patient
    if patient.weight_kg is not None and PLAUSIBILITY["weight_kg"].implausible(patient.weight_kg):
        _implausible("patient.weight_kg", _weight_message(patient.weight_kg))
    if patient.age_years is not None and PLAUSIBILITY["age_years"].implausible(patient.age_years):
        _implausible("patient.age_years", _age_message(patient.age_years))
    first = ctx.first_implausible
    if first is not None:
        _implausible(f"labs[{first.position}].value", _lab_message(ctx.request.labs[first.position], first.value))


def lab_fault(lab: Lab) -> str | None:
    """Why one result is outside the plausibility bounds of RULES.md section 0 (the message a request
    carrying it would get), or None: for results that arrive without a request (an import)."""
    value = lab.value * UNITS_BY_TEST[lab.test][lab.unit]
    return _lab_message(lab, value) if PLAUSIBILITY[lab.test].implausible(value) else None


def weight_fault(weight: Decimal) -> str | None:
    """Why a weight is outside the plausibility bounds, or None."""
    return _weight_message(weight) if PLAUSIBILITY["weight_kg"].implausible(weight) else None


def age_fault(age: Decimal) -> str | None:
    """Why an age is outside the plausibility bounds, or None."""
    return _age_message(age) if PLAUSIBILITY["age_years"].implausible(age) else None


def _implausible(field: str, message: str) -> None:
    raise RequestError("implausible_value", f"{field}: {message}", field)


def _lab_message(lab: Lab, value: Decimal) -> str:
    bounds = PLAUSIBILITY[lab.test]
    side = f"below {fmt(bounds.low)}" if value < bounds.low else f"above {fmt(bounds.high)}"
    if lab.test == "platelets":
        stated = f"platelet count {fmt(lab.value)} {lab.unit} is {side} x10^9/L"
        if value > bounds.high and lab.unit != "/uL":
            per_ul = value / 1000
            return f"{stated}; did you mean {fmt(per_ul)} (a count of {fmt(lab.value)} per uL)?"
        return stated
    stated = f"haemoglobin {fmt(lab.value)} {lab.unit} is {side} g/dL"
    for unit, factor in UNITS_BY_TEST["hemoglobin"].items():
        candidate = lab.value * factor
        if unit != lab.unit and not bounds.implausible(candidate) and not bounds.unusual(candidate):
            converted = "" if unit == "g/dL" else f" ({fmt(candidate)} g/dL)"
            return f"{stated}; did you mean {fmt(lab.value)} {unit}{converted}?"
    return stated


def _weight_message(weight: Decimal) -> str:
    bounds = PLAUSIBILITY["weight_kg"]
    if weight < bounds.low:
        return f"weight {fmt(weight)} kg is below {fmt(bounds.low)} kg; enter the weight in kg"
    stated = f"weight {fmt(weight)} kg is above {fmt(bounds.high)} kg"
    in_kg = weight / 1000
    if not bounds.implausible(in_kg):
        return f"{stated}; did you mean {fmt(in_kg)} kg (a weight of {fmt(weight)} g)?"
    return stated


def _age_message(age: Decimal) -> str:
    bounds = PLAUSIBILITY["age_years"]
    if age < bounds.low:
        return f"age {fmt(age)} years is below 0"
    stated = f"age {fmt(age)} years is above {fmt(bounds.high)}"
    if bounds.implausible(age / 12):  # no number of months either (1e300 would not even round)
        return stated
    in_years = (age / 12).quantize(Decimal("0.1"))
    return f"{stated}; did you mean {fmt(in_years)} years ({fmt(age)} months)?"


install_shape_check(shape_fault)  # here, where the registry is at hand: models cannot import it (a cycle)
