"""Romiplostim: weekly subcutaneous injection in ITP (RULES.md section 1)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from core.framework import (
    CONVENTIONS_SOURCE,
    FOUR_WEEKS,
    ONE_WEEK,
    Context,
    Decision,
    DrugProfile,
    DrugRules,
    Modifier,
    Packaging,
    Result,
    days,
    deciding_or_refer,
    describe_count,
    is_stable,
    latest,
    refer,
)
from core.numbers import fmt

PROFILE = DrugProfile(
    drug="romiplostim",
    dosing_unit="mcg/kg",
    total_unit="mcg",
    weight_based=True,
    interval_days=7,
    indications=("itp",),
    regions=("us", "eu"),
    deciding_test="platelets",
    packaging=Packaging(
        concentration_per_ml=Decimal(500),
        vial_sizes=(Decimal(500), Decimal(250), Decimal(125)),
        dilute_below=Decimal(23),
        diluted_concentration_per_ml=Decimal(125),
    ),
)

LOWEST = Decimal(1)
HIGHEST = Decimal(10)
STEP = Decimal(1)
START = Decimal(1)
LOW = Decimal(50)  # increase below; the lower bound of "stable"
MIN_AGE_YEARS = Decimal(1)
PEDIATRIC_BELOW_YEARS = Decimal(18)
PEDIATRIC_WEIGHT_MAX_AGE_DAYS = 84  # weight reassessed every 12 weeks in children
NO_RESPONSE_DOSES = 4
# "2 consecutive weeks": Q is the latest count dated 4 to 10 days before the deciding count.
WEEK_BEFORE_DAYS = (4, 10)  # (nearest, farthest) days before the deciding count
_NEAREST, _FARTHEST = days(WEEK_BEFORE_DAYS[0]), days(WEEK_BEFORE_DAYS[1])


@dataclass(frozen=True, slots=True)
class Thresholds:
    """One region's platelet thresholds (RULES.md section 1): the US and EU labels differ."""

    reduce_above: Decimal  # for 2 consecutive weeks
    hold_above: Decimal
    resume_below: Decimal


THRESHOLDS = {
    "us": Thresholds(reduce_above=Decimal(200), hold_above=Decimal(400), resume_below=Decimal(200)),
    "eu": Thresholds(reduce_above=Decimal(150), hold_above=Decimal(250), resume_below=Decimal(150)),
}

_LABEL = {"us": "Nplate US PI", "eu": "Nplate EU SmPC"}
_SECTION = {
    "us": {"dosing": "2.2", "start": "2.1", "prep": "2.3", "warn": "5", "peds": "2.2"},
    "eu": {"dosing": "4.2", "start": "4.2", "prep": "6.6", "warn": "4.4", "peds": "4.2"},
}
_RULE_SECTION = {
    "romiplostim.age": "start",
    "romiplostim.start": "start",
    "romiplostim.pediatric_weight": "peds",
    "dose.dilution": "prep",
}


def source(rule: str, region: str) -> str:
    """The label section a rule id comes from (US PI or EU SmPC), for the rationale."""
    if rule.startswith("lab.") or rule in ("dose.late", "value.unusual"):
        return CONVENTIONS_SOURCE
    if rule == "dose.not_a_level":
        return f"{_LABEL[region]} {_SECTION[region]['dosing']}; {CONVENTIONS_SOURCE}"
    return f"{_LABEL[region]} {_SECTION[region][_RULE_SECTION.get(rule, 'dosing')]}"


def decide(ctx: Context) -> Decision:
    """The action for one request (RULES.md section 1), with the rule id that decided it.

    Age and the dose's range refer first; then the fresh count against the region's thresholds."""
    request = ctx.request
    age = request.patient.age_years
    if age is not None and age < MIN_AGE_YEARS:
        return refer(
            "romiplostim.age", f"Age {fmt(age)} years: romiplostim is not approved below {fmt(MIN_AGE_YEARS)} year."
        )
    dose = request.current_dose
    if dose is not None and not (LOWEST <= dose.amount <= HIGHEST):
        return refer(
            "dose.not_a_level",
            f"Current dose {fmt(dose.amount)} mcg/kg is outside the label's {fmt(LOWEST)} to {fmt(HIGHEST)} mcg/kg.",
            "dose_outside_label",
        )
    count = deciding_or_refer(ctx)
    if isinstance(count, Decision):  # no fresh result: refer (RULES.md 0)
        return count
    limits = THRESHOLDS[ctx.region]
    seen = describe_count(count)

    if dose is None:
        if count.value > limits.hold_above:
            return refer(
                "romiplostim.start",
                f"Not started: {seen}, above {fmt(limits.hold_above)}.",
                # RULES.md 1 `romiplostim.start`: `platelets_not_low` is a warning of the start only;
                # the refer carries `platelets_high` only (confirmed in v1.1, section 8).
                "platelets_high",
            )
        warnings = ("platelets_not_low",) if count.value >= LOW else ()
        return Decision(
            "start",
            "romiplostim.start",
            f"Start at {fmt(START)} mcg/kg once weekly ({seen}).",
            dose=START,
            warnings=warnings,
        )

    current = dose.amount
    if request.on_hold:
        if count.value < limits.resume_below:
            resumed = current - STEP
            if resumed < LOWEST:
                return refer(
                    "romiplostim.resume",
                    f"{seen}, below {fmt(limits.resume_below)}: resuming {fmt(STEP)} mcg/kg below the pre-hold "
                    f"{fmt(current)} mcg/kg would be under {fmt(LOWEST)} mcg/kg.",
                )
            return Decision(
                "resume",
                "romiplostim.resume",
                f"{seen}, below {fmt(limits.resume_below)}: resume at {fmt(resumed)} mcg/kg "
                f"(pre-hold {fmt(current)} minus {fmt(STEP)}).",
                dose=resumed,
            )
        return Decision(
            "hold", "romiplostim.still_held", f"{seen}, not below {fmt(limits.resume_below)}: keep holding."
        )

    if count.value > limits.hold_above:
        return Decision(
            "hold",
            "romiplostim.hold",
            f"{seen}, above {fmt(limits.hold_above)}: hold the dose.",
            warnings=("platelets_high",),
        )
    if count.value < LOW:
        if current == HIGHEST:
            doses = ctx.doses_at_level
            if doses >= NO_RESPONSE_DOSES:
                return Decision(
                    "discontinue",
                    "romiplostim.no_response",
                    f"{seen}, below {fmt(LOW)} after {doses} weekly doses at {fmt(HIGHEST)} mcg/kg: discontinue.",
                    warnings=("no_response", "rebound_thrombocytopenia"),
                )
            return Decision(
                "continue",
                "romiplostim.max_dose",
                f"{seen}, below {fmt(LOW)} at the maximum {fmt(HIGHEST)} mcg/kg ({doses} doses so far): continue.",
                dose=HIGHEST,
                warnings=("max_dose",),
            )
        raised = min(current + STEP, HIGHEST)
        return Decision(
            "increase",
            "romiplostim.increase",
            f"{seen}, below {fmt(LOW)}: increase from {fmt(current)} to {fmt(raised)} mcg/kg.",
            dose=raised,
        )
    previous = _week_before(ctx, count)
    if previous is not None and count.value > limits.reduce_above and previous.value > limits.reduce_above:
        lowered = current - STEP
        text = (
            f"{seen} and {fmt(previous.value)} on {previous.date}: above {fmt(limits.reduce_above)} "
            "for 2 consecutive weeks"
        )
        if lowered < LOWEST:
            return refer(
                "romiplostim.reduce",
                f"{text}; reducing {fmt(current)} mcg/kg by {fmt(STEP)} would be under {fmt(LOWEST)} mcg/kg.",
            )
        return Decision("decrease", "romiplostim.reduce", f"{text}: reduce to {fmt(lowered)} mcg/kg.", dose=lowered)
    return Decision("continue", "romiplostim.continue", f"{seen}: continue at {fmt(current)} mcg/kg.", dose=current)


def week_before(day: dt.date) -> tuple[dt.date, dt.date]:
    """The dates of Q in the 2-consecutive-weeks rule, (first, last): 10 to 4 days before `day`.

    The one window the rule, the chat's question and its check of an entered date all use."""
    return day - _FARTHEST, day - _NEAREST


def _week_before(ctx: Context, count: Result) -> Result | None:
    """Q of the 2-consecutive-weeks rule: the latest count dated 4 to 10 days before `count`."""
    first, last = week_before(count.date)
    return latest(ctx.platelets, on_or_after=first, on_or_before=last)


def monitoring(ctx: Context, decision: Decision, next_dose: dt.date | None) -> dt.date | None:
    """Weekly; monthly once stable (continue, 28 days at the level, 3 or more counts, all in range)."""
    if decision.action == "continue" and is_stable(ctx, LOW, THRESHOLDS[ctx.region].reduce_above):
        return ctx.as_of + FOUR_WEEKS
    return ctx.as_of + ONE_WEEK


def modifiers(ctx: Context, decision: Decision, next_dose: dt.date | None) -> list[Modifier]:
    """A child's weight undated or older than 12 weeks: reassess it, since the dose is per kg."""
    patient = ctx.request.patient
    if patient.age_years is None or patient.age_years >= PEDIATRIC_BELOW_YEARS:
        return []
    weighed = patient.weight_date
    if weighed is not None and (ctx.as_of - weighed).days <= PEDIATRIC_WEIGHT_MAX_AGE_DAYS:
        return []
    weeks = PEDIATRIC_WEIGHT_MAX_AGE_DAYS // 7
    when = "has no date" if weighed is None else f"is from {weighed}, more than {weeks} weeks ago"
    return [
        Modifier(
            "romiplostim.pediatric_weight",
            "pediatric_weight_reassess",
            f"Age {fmt(patient.age_years)}: the weight {when}; reassess it every {weeks} weeks.",
        )
    ]


def standing_warnings(ctx: Context, decision: Decision) -> tuple[str, ...]:
    """The label warning every romiplostim answer carries."""
    return ("thrombosis_risk",)


RULES = DrugRules(PROFILE, decide, monitoring, modifiers, standing_warnings, source)
