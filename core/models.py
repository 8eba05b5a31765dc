"""Request and response models of the dosing contract (shared/spec/dosing-contract.md, v1) for ruleset v1.1.

Requests are strict: JSON numbers, ISO dates and JSON booleans only, unknown fields forbidden,
because a silently coerced value ("true" read as 1, a timestamp read as a date) is a wrong dose.
`null` for an optional field means absent, as the contract says.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from core.units import unit_fault

Drug = Literal["romiplostim", "hetrombopag", "lusutrombopag", "luspatercept"]
Indication = Literal["itp", "cit", "cld_procedure", "beta_thalassemia", "mds"]
Region = Literal["us", "eu", "jp", "cn"]
DoseUnit = Literal["mcg/kg", "mg/kg", "mg"]
LabTest = Literal["platelets", "hemoglobin"]
LabUnit = Literal["10^9/L", "10^3/uL", "/uL", "G/L", "g/dL", "g/L", "mmol/L"]
ChildPugh = Literal["A", "B", "C"]
Action = Literal["start", "continue", "increase", "decrease", "hold", "resume", "discontinue", "complete", "refer"]
Severity = Literal["critical", "warning", "info"]
# `internal_error` extends the contract: a fault of ours on one request, never a traceback (issue 10).
ErrorCode = Literal["invalid_request", "implausible_value", "internal_error"]
# JSON numbers in responses: ints where whole (288), floats otherwise (93.1); never strings.
Number = int | float

_ISO_DATE_LENGTH = len("2026-11-22")
# A sane clinical calendar: dates near 0001 or 9999 overflow the rules' date arithmetic (a week on,
# ten days back), and no dose history or procedure lies outside these years.
FIRST_DATE = dt.date(1900, 1, 1)
LAST_DATE = dt.date(2200, 12, 31)
MAX_LIST_LENGTH = 1000  # labs or transfusions in one request: years of weekly results


def _json_number(value: Any) -> Any:
    # bool is an int in Python; "72" is a string: both are refused rather than coerced.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise PydanticCustomError("number_type", "expected a number, got {input}", {"input": value})
    if isinstance(value, float) and not math.isfinite(value):  # 1e999 parses as infinity
        raise PydanticCustomError("number_type", "expected a finite number, got {input}", {"input": value})
    return value


def _json_whole_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("whole_number_type", "expected a whole number, got {input}", {"input": value})
    return value


def _iso_date(value: Any) -> Any:
    # Only YYYY-MM-DD: a timestamp or a datetime string is not silently read as a date.
    day: dt.date | None = None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        day = value
    elif isinstance(value, str) and len(value) == _ISO_DATE_LENGTH:
        with contextlib.suppress(ValueError):  # not a calendar date: refused below
            day = dt.date.fromisoformat(value)
    if day is not None:
        if not FIRST_DATE <= day <= LAST_DATE:
            raise PydanticCustomError(
                "iso_date", "expected a date from 1900-01-01 to 2200-12-31, got {input}", {"input": value}
            )
        return day
    raise PydanticCustomError("iso_date", "expected a date as YYYY-MM-DD, got {input}", {"input": value})


def _json_bool(value: Any) -> Any:
    if value is None:  # null means absent: false
        return False
    if not isinstance(value, bool):
        raise PydanticCustomError("bool_type", "expected true or false, got {input}", {"input": value})
    return value


# The drug-dependent checks of a request (core.validation.shape_fault) need the drug registry, which
# needs these models: core.validation installs them here when it is imported (every `import core`
# does), so that the import graph of `core` has no cycle. (field, value, fields before it) -> fault.
ShapeCheck = Callable[[str, Any, dict[str, Any]], "tuple[str, str] | None"]
_SHAPE_CHECK: list[ShapeCheck] = []


def install_shape_check(check: ShapeCheck) -> None:
    """Wire the drug-dependent checks into `DoseRequest` (done once, by core.validation on import)."""
    _SHAPE_CHECK[:] = [check]


def _shape_fault(field: str, value: Any, earlier: dict[str, Any]) -> tuple[str, str] | None:
    if not _SHAPE_CHECK:  # never validate a request without its drug's checks
        raise RuntimeError("core.validation has not installed the drug checks: import core, not core.models alone")
    return _SHAPE_CHECK[0](field, value, earlier)


def _null_means_empty(value: Any) -> Any:
    return [] if value is None else value


def _as_json_number(value: Decimal) -> int | float:
    integral = value.to_integral_value()
    return int(integral) if value == integral else float(value)


# Serialised back as JSON numbers (3, 93.1), so a stored request reads as the contract's JSON.
JsonNumber = Annotated[Decimal, BeforeValidator(_json_number), PlainSerializer(_as_json_number, when_used="json")]
WholeNumber = Annotated[int, BeforeValidator(_json_whole_number)]
IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
JsonBool = Annotated[bool, BeforeValidator(_json_bool)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Patient(_Request):
    """What the rules read about the patient; each field only where a drug's rules need it."""

    weight_kg: JsonNumber | None = None
    age_years: JsonNumber | None = None
    weight_date: IsoDate | None = None
    child_pugh: ChildPugh | None = None


class CurrentDose(_Request):
    """The dose being given: the level, since when, and the last given day that times the next."""

    amount: JsonNumber = Field(gt=0)
    unit: DoseUnit
    since: IsoDate
    last_given: IsoDate
    doses_at_level: WholeNumber | None = Field(default=None, ge=1)


class Lab(_Request):
    """One lab result in the unit as entered; the core converts it to the deciding unit."""

    test: LabTest
    value: JsonNumber
    unit: LabUnit
    date: IsoDate

    @model_validator(mode="after")
    def _unit_fits_test(self) -> Lab:
        message = unit_fault(self.test, self.unit)
        if message is not None:
            raise PydanticCustomError("drug_shape", "{message}", {"message": message, "subfield": "unit"})
        return self


class Transfusion(_Request):
    """One red-cell transfusion: luspatercept's rules count them over windows."""

    date: IsoDate
    units: JsonNumber = Field(gt=0)


class AdverseReaction(_Request):
    """The current adverse reaction: luspatercept judges it before any dose rule (discontinue or refer)."""

    grade: WholeNumber = Field(ge=1, le=4)
    hypersensitivity: JsonBool = False


class DoseRequest(_Request):
    """One dosing question: the drug, the decision date, the patient's dose history and labs."""

    drug: Drug
    indication: Indication
    region: Region | None = None
    as_of: IsoDate
    patient: Annotated[Patient, BeforeValidator(lambda v: Patient() if v is None else v)] = Field(
        default_factory=Patient, validate_default=True
    )
    current_dose: CurrentDose | None = None
    on_hold: JsonBool = False
    labs: Annotated[list[Lab], BeforeValidator(_null_means_empty)] = Field(
        default_factory=list, max_length=MAX_LIST_LENGTH
    )
    transfusions: Annotated[list[Transfusion], BeforeValidator(_null_means_empty)] = Field(
        default_factory=list, max_length=MAX_LIST_LENGTH
    )
    baseline_rbc_units_per_12_weeks: JsonNumber | None = Field(default=None, ge=0)
    procedure_date: IsoDate | None = Field(default=None, validate_default=True)
    adverse_reaction: AdverseReaction | None = None

    @field_validator(
        "indication", "region", "patient", "current_dose", "on_hold", "labs", "transfusions", "procedure_date"
    )
    @classmethod
    def _fits_the_drug(cls, value: Any, info: ValidationInfo) -> Any:
        """Faults that depend on the drug, checked here so they rank with the others in field order."""
        fault = _shape_fault(info.field_name or "", value, info.data)
        if fault is not None:
            raise PydanticCustomError("drug_shape", "{message}", {"message": fault[1], "field": fault[0]})
        return value


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Amount(_Response):
    """A quantity with its unit, so a number never travels without it."""

    amount: Number
    unit: str


class Vial(_Response):
    """Vials of one size to dispense for the dose."""

    size: Number
    unit: str
    count: int


class Monitoring(_Response):
    """When to test next and which tests."""

    date: dt.date
    tests: list[LabTest]


class SafetyWarning(_Response):
    """One warning of a response: a stable code for programs, a severity, and the text for people.

    Named so as not to shadow the builtin `Warning`; the JSON field is still `warnings`."""

    code: str
    severity: Severity
    message: str


class Rationale(_Response):
    """Why: the rule id, its source document and the reason text; every decision carries one."""

    rule: str
    source: str
    text: str


class DoseResponse(_Response):
    """The recommendation: what to give, when, when to check again, and why."""

    action: Action
    dose: Amount | None
    total: Amount | None
    volume_ml: Number | None
    injections: int | None
    vials: list[Vial]
    next_dose_date: dt.date | None
    schedule: list[dt.date]
    next_monitoring: Monitoring | None
    warnings: list[SafetyWarning]
    rationale: list[Rationale] = Field(min_length=1)
    ruleset: str


class ErrorBody(_Response):
    """The contract's error: a code, a message and the field at fault (if one)."""

    code: ErrorCode
    message: str
    field: str | None


class ErrorResponse(_Response):
    """The contract's answer to a request the core refuses."""

    error: ErrorBody
