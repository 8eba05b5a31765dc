"""Checks that need more than one field (drug-specific shape) and the plausibility bounds.

Order follows the contract: every `invalid_request` before any `implausible_value`, each in
field order, so the first fault reported is the first one a reader of the request meets.
"""

from __future__ import annotations

from decimal import Decimal

from core.errors import RequestError
from core.framework import Context, DrugProfile
from core.models import DoseRequest, Lab
from core.numbers import fmt
from core.units import PLAUSIBILITY, UNITS_BY_TEST


def check_shape(request: DoseRequest, profile: DrugProfile) -> None:
    """Faults of shape that depend on the drug: `invalid_request`, in field order."""
    drug = request.drug
    if request.indication not in profile.indications:
        _invalid(
            "indication",
            f"'{request.indication}' is not an indication of {drug}; expected one of {', '.join(profile.indications)}",
        )
    if request.region is not None and request.region not in profile.regions:
        _invalid(
            "region",
            f"'{request.region}' is not a region with rules for {drug}; expected one of {', '.join(profile.regions)}",
        )
    as_of = request.as_of
    patient = request.patient
    if profile.weight_based and patient.weight_kg is None:
        _invalid("patient.weight_kg", f"required for {drug}, which is dosed by body weight")
    if patient.weight_date is not None and patient.weight_date > as_of:
        _invalid("patient.weight_date", f"{patient.weight_date} is after as_of {as_of}")
    dose = request.current_dose
    if dose is not None:
        if dose.unit != profile.dosing_unit:
            _invalid("current_dose.unit", f"{drug} is dosed in {profile.dosing_unit}, not {dose.unit}")
        if dose.since > as_of:
            _invalid("current_dose.since", f"{dose.since} is after as_of {as_of}")
        if dose.last_given > as_of:
            _invalid("current_dose.last_given", f"{dose.last_given} is after as_of {as_of}")
        if dose.last_given < dose.since:
            _invalid(
                "current_dose.last_given",
                f"{dose.last_given} is before since {dose.since} (the first dose at this level)",
            )
    if request.on_hold:
        if dose is None:
            _invalid("on_hold", "on hold needs current_dose: the dose before the interruption")
        if drug == "lusutrombopag":
            _invalid("on_hold", "a lusutrombopag course is not put on hold")
    for i, lab in enumerate(request.labs):
        if lab.unit not in UNITS_BY_TEST[lab.test]:
            _invalid(
                f"labs[{i}].unit",
                f"'{lab.unit}' is not a unit for {lab.test}; expected one of {', '.join(UNITS_BY_TEST[lab.test])}",
            )
        if lab.date > as_of:
            _invalid(f"labs[{i}].date", f"{lab.date} is after as_of {as_of}")
    for i, transfusion in enumerate(request.transfusions):
        if transfusion.date > as_of:
            _invalid(f"transfusions[{i}].date", f"{transfusion.date} is after as_of {as_of}")
    if drug == "lusutrombopag" and request.procedure_date is None:
        _invalid("procedure_date", "required for lusutrombopag, which is timed by the procedure")


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


def _invalid(field: str, message: str) -> None:
    raise RequestError("invalid_request", f"{field}: {message}", field)


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
    in_years = (age / 12).quantize(Decimal("0.1"))
    return f"age {fmt(age)} years is above {fmt(bounds.high)}; did you mean {fmt(in_years)} years ({fmt(age)} months)?"
