"""An imported value checked as the chat checks a typed one: by the core's models and plausibility
bounds (core/models.py, core/validation.py), so a file cannot bring in what the chat would refuse.

Each check returns the record's item, or raises `UnreadableError` with the reason in words.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from pydantic import ValidationError

from bot.exports.record import GivenDose, Lab, Transfusion, Treatment
from core import models
from core.registry import REGISTRY
from core.units import UNITS_BY_TEST, unit_fault
from core.validation import age_fault, lab_fault, weight_fault

DOSE_STATUSES = ("given", "skipped", "missed")


class UnreadableError(ValueError):
    """One item of a file that cannot be imported; the message says why."""


def _first(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def text(value: Decimal) -> str:
    """A number as the record keeps it: its decimal text, without trailing zeros."""
    return format(value.normalize(), "f")


def number(raw: str | float | Decimal | None, what: str) -> Decimal:
    if raw is None or str(raw).strip() == "":
        raise UnreadableError(f"{what} is missing")
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise UnreadableError(f"{what} {str(raw)!r} is not a number") from None
    if not value.is_finite():
        raise UnreadableError(f"{what} {str(raw)!r} is not a number")
    return value


def day(raw: str | dt.date | None, what: str, today: dt.date) -> dt.date:
    if raw is None or str(raw).strip() == "":
        raise UnreadableError(f"{what} is missing")
    if isinstance(raw, dt.datetime):
        found = raw.date()
    elif isinstance(raw, dt.date):
        found = raw
    else:
        try:
            found = dt.date.fromisoformat(str(raw).strip()[:10])
        except ValueError:
            raise UnreadableError(f"{what} {str(raw)!r} is not a date (YYYY-MM-DD)") from None
    if found > today:
        raise UnreadableError(f"{what} {found.isoformat()} is after today ({today.isoformat()})")
    return found


def lab(test: str, value: str | Decimal | float | None, unit: str, date: dt.date) -> Lab:
    """A result, its unit fitting its test and its value within the core's plausibility bounds."""
    if test in UNITS_BY_TEST and unit_fault(test, unit) is not None:
        raise UnreadableError(f"unit: {unit_fault(test, unit)}")
    try:
        checked = models.Lab.model_validate({"test": test, "value": number(value, "value"), "unit": unit, "date": date})
    except ValidationError as error:
        raise UnreadableError(_first(error)) from None
    fault = lab_fault(checked)
    if fault is not None:
        raise UnreadableError(fault)
    return Lab(checked.test, text(checked.value), checked.unit, checked.date)


def _rules(drug: str) -> models.Drug:
    if drug not in REGISTRY:
        raise UnreadableError(f"'{drug}' is not a drug HemaDose doses ({', '.join(REGISTRY)})")
    return drug  # type: ignore[return-value]  # checked against the registry's keys just above


def dose(drug: str, amount: str | Decimal | float | None, unit: str, given_on: dt.date, status: str) -> GivenDose:
    """A dose of a known drug, in its dosing unit, above zero."""
    rules = REGISTRY[_rules(drug)]
    if unit != rules.profile.dosing_unit:
        raise UnreadableError(f"{drug} is dosed in {rules.profile.dosing_unit}, not {unit or 'no unit'}")
    value = number(amount, "dose")
    if value <= 0:
        raise UnreadableError(f"dose {text(value)} {unit} is not above 0")
    if status not in DOSE_STATUSES:
        raise UnreadableError(f"dose status '{status}' is not one of {', '.join(DOSE_STATUSES)}")
    return GivenDose(drug, text(value), unit, given_on, status)


def transfusion(date: dt.date, units: str | Decimal | float | None) -> Transfusion:
    try:
        checked = models.Transfusion.model_validate({"date": date, "units": number(units, "units")})
    except ValidationError as error:
        raise UnreadableError(_first(error)) from None
    return Transfusion(checked.date, text(checked.units))


def treatment(
    drug: str, indication: str, region: str, amount: str | None, unit: str, since: dt.date | None, on_hold: bool
) -> Treatment:
    """The current treatment: a drug, one of its indications and regions, a dose in its unit."""
    profile = REGISTRY[_rules(drug)].profile
    if indication not in profile.indications:
        raise UnreadableError(f"'{indication}' is not an indication of {drug} ({', '.join(profile.indications)})")
    if region not in profile.regions:
        raise UnreadableError(f"'{region}' is not a region with rules for {drug} ({', '.join(profile.regions)})")
    if unit != profile.dosing_unit:
        raise UnreadableError(f"{drug} is dosed in {profile.dosing_unit}, not {unit or 'no unit'}")
    dose = None
    if amount not in (None, ""):
        value = number(amount, "dose")
        if value <= 0:
            raise UnreadableError(f"dose {text(value)} {unit} is not above 0")
        dose = text(value)
    return Treatment(drug, indication, region, dose, unit, since, on_hold)


def weight(value: str | Decimal | float | None) -> str:
    checked = number(value, "weight")
    fault = weight_fault(checked)
    if fault is not None:
        raise UnreadableError(fault)
    return text(checked)


def age(value: str | Decimal | float | None) -> str:
    checked = number(value, "age")
    fault = age_fault(checked)
    if fault is not None:
        raise UnreadableError(fault)
    return text(checked)


def child_pugh(value: str) -> str:
    if value not in ("A", "B", "C"):
        raise UnreadableError(f"Child-Pugh class '{value}' is not A, B or C")
    return value


def baseline(value: str | Decimal | float | None) -> str:
    checked = number(value, "baseline transfusion burden")
    if checked < 0:
        raise UnreadableError(f"baseline transfusion burden {text(checked)} is below 0")
    return text(checked)


def label(value: str, today: dt.date) -> str:
    """A patient label as the chat takes one: a code with a digit, never a name (flows/answers/patient.py)."""
    from flows.answers.patient import parse_patient
    from flows.parsing import Problem
    from flows.replies import Env
    from flows.state import Answers

    parsed = parse_patient(value, Answers(), Env(today))
    if isinstance(parsed, Problem):
        raise UnreadableError(f"patient label {value!r}: {parsed.message}")
    return value.strip()
