"""Lusutrombopag: 3 mg daily for 7 days before a procedure, chronic liver disease (RULES.md section 3)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from core.framework import (
    CONVENTIONS_SOURCE,
    Context,
    Decision,
    DrugProfile,
    DrugRules,
    Modifier,
    days,
    deciding_or_refer,
    describe_count,
    latest,
    refer,
)
from core.numbers import fmt

PROFILE = DrugProfile(
    drug="lusutrombopag",
    dosing_unit="mg",
    total_unit="mg",
    weight_based=False,
    interval_days=1,
    indications=("cld_procedure",),
    regions=("us", "jp"),
    deciding_test="platelets",
)

DOSE = Decimal(3)
COURSE_DAYS = 7
# Start window: days before the procedure, (earliest, latest).
START_WINDOW = {"us": (14, 8), "jp": (13, 8)}
# The procedure is 2 to 8 days after day 7.
PROCEDURE_AFTER_LAST_DOSE = (2, 8)
NOT_LOW = Decimal(50)
PRE_PROCEDURE_LOW = Decimal(50)
PRE_PROCEDURE_DAYS = 2
JP_STOP_DAY = 5
JP_STOP_RISE = Decimal(20)

_SOURCES = {
    "us": {
        "dosing": "Mulpleta US PI 2.1",
        "lusutrombopag.child_pugh_c": "Mulpleta US PI; L-PLUS 1 and L-PLUS 2 (Child-Pugh C not studied)",
        "lusutrombopag.not_low": "Mulpleta US PI 2.1; L-PLUS 1 and L-PLUS 2",
        "lusutrombopag.pre_procedure": "Mulpleta US PI 2.1; L-PLUS 1 and L-PLUS 2",
    },
    "jp": {
        "dosing": "Mulpleta Japan PI 7.1",
        "lusutrombopag.child_pugh_c": "Mulpleta Japan PI (contraindication: Child-Pugh C)",
        "lusutrombopag.not_low": "Mulpleta Japan PI 7.1; L-PLUS 1",
        "lusutrombopag.pre_procedure": "Mulpleta Japan PI 7.1; L-PLUS 1",
    },
}


def source(rule: str, region: str) -> str:
    """The document a rule id comes from, by region (US PI or Japan PI), for the rationale."""
    if rule.startswith("lab.") or rule in ("dose.missed", "value.unusual"):
        return CONVENTIONS_SOURCE
    table = _SOURCES[region]
    return table.get(rule, table["dosing"])


def decide(ctx: Context) -> Decision:
    """The action for one request (RULES.md section 3): a 7-day course timed by the procedure.

    A course under way is judged by `_started`; before it, Child-Pugh C (JP), timing and the count decide."""
    request = ctx.request
    procedure = request.procedure_date
    assert procedure is not None  # required by validation
    dose = request.current_dose
    child_pugh_c = request.patient.child_pugh == "C"
    if dose is not None:
        return _started(ctx, dose.since, dose.amount)

    if child_pugh_c and ctx.region == "jp":
        return refer(
            "lusutrombopag.child_pugh_c",
            "Child-Pugh C: lusutrombopag is contraindicated in the Japanese label.",
            "severe_hepatic_impairment",
        )
    earliest, latest_start = START_WINDOW[ctx.region]
    if ctx.as_of > procedure - days(latest_start):
        return refer(
            "lusutrombopag.too_late",
            f"The procedure on {procedure} is less than {latest_start} days away: too late to start a "
            f"{COURSE_DAYS}-day course ({earliest} to {latest_start} days before).",
            "procedure_window",
        )
    count = deciding_or_refer(ctx)
    if isinstance(count, Decision):  # no fresh result: refer (RULES.md 0)
        return count
    seen = describe_count(count)
    if count.value >= NOT_LOW:
        return refer(
            "lusutrombopag.not_low",
            f"{seen}, not below {fmt(NOT_LOW)}: studied only below {fmt(NOT_LOW)}, not to normalise counts.",
            "platelets_not_low",
        )
    first = max(ctx.as_of, procedure - days(earliest))
    schedule = [first + days(day) for day in range(COURSE_DAYS)]
    return Decision(
        "start",
        "lusutrombopag.start",
        f"{seen}: start {fmt(DOSE)} mg once daily for {COURSE_DAYS} days, {schedule[0]} to {schedule[-1]}, "
        f"before the procedure on {procedure}.",
        dose=DOSE,
        next_dose_date=first,
        schedule=schedule,
    )


def _started(ctx: Context, day_one: dt.date, amount: Decimal) -> Decision:
    """Once started the course follows the calendar: no lab check."""
    request = ctx.request
    if amount != DOSE:
        return refer(
            "dose.not_a_level",
            f"Current dose {fmt(amount)} mg: the only level is {fmt(DOSE)} mg.",
            "dose_outside_label",
        )
    dose = request.current_dose
    assert dose is not None
    as_of = ctx.as_of
    day = (as_of - day_one).days + 1
    last_day = day_one + days(COURSE_DAYS - 1)
    if day > COURSE_DAYS or ctx.doses_at_level >= COURSE_DAYS or (day == COURSE_DAYS and dose.last_given == as_of):
        return Decision(
            "complete",
            "lusutrombopag.complete",
            f"Day {day} of the course that began {day_one}: the {COURSE_DAYS}-day course is complete.",
        )
    if request.patient.child_pugh == "C" and ctx.region == "jp":
        # `lusutrombopag.child_pugh_c` (v1.1), after `lusutrombopag.complete`: JP refers; the US
        # warning is a modifier (see `modifiers`).
        return refer(
            "lusutrombopag.child_pugh_c",
            f"Day {day}: Child-Pugh C, lusutrombopag is contraindicated in the Japanese label; "
            "the clinician decides whether to stop the course.",
            "severe_hepatic_impairment",
        )
    if ctx.region == "jp" and day >= JP_STOP_DAY:
        baseline = latest(ctx.platelets, on_or_before=day_one)
        recent = latest(ctx.platelets, on_or_after=day_one + days(JP_STOP_DAY - 1))
        if (
            baseline is not None
            and recent is not None
            and recent.value >= NOT_LOW
            and recent.value - baseline.value >= JP_STOP_RISE
        ):
            return Decision(
                "discontinue",
                "lusutrombopag.jp_stop",
                f"Day {day}: {describe_count(recent)}, at least {fmt(NOT_LOW)} and "
                f"{fmt(recent.value - baseline.value)} "
                f"above the baseline {fmt(baseline.value)} on {baseline.date}: target reached, stop the course.",
            )
    next_date = as_of + days(1) if dose.last_given == as_of else as_of
    schedule = [next_date + days(n) for n in range((last_day - next_date).days + 1)]
    return Decision(
        "continue",
        "lusutrombopag.continue",
        f"Day {day} of {COURSE_DAYS}: continue {fmt(DOSE)} mg daily to {last_day}.",
        dose=DOSE,
        schedule=schedule,
    )


def _course_start(ctx: Context, decision: Decision) -> dt.date | None:
    dose = ctx.request.current_dose
    if dose is not None:
        return dose.since
    if decision.action == "start":
        return decision.next_dose_date
    return None


def monitoring(ctx: Context, decision: Decision, next_dose: dt.date | None) -> dt.date | None:
    """US: a count at most 2 days before the procedure. JP: on day 5 while that is still to come."""
    procedure = ctx.request.procedure_date
    assert procedure is not None
    day_one = _course_start(ctx, decision)
    if ctx.region == "jp" and day_one is not None:
        day_five = day_one + days(JP_STOP_DAY - 1)
        if ctx.as_of <= day_five and not any(r.date == day_five for r in ctx.platelets):
            return day_five
    return max(procedure - days(PRE_PROCEDURE_DAYS), ctx.as_of)


def modifiers(ctx: Context, decision: Decision, next_dose: dt.date | None) -> list[Modifier]:
    """Situational warnings: procedure outside the label's window, a low count near it, Child-Pugh C (US)."""
    request = ctx.request
    procedure = request.procedure_date
    assert procedure is not None
    found: list[Modifier] = []
    day_one = _course_start(ctx, decision)
    if day_one is not None:
        gap = (procedure - (day_one + days(COURSE_DAYS - 1))).days
        low, high = PROCEDURE_AFTER_LAST_DOSE
        if not low <= gap <= high:
            found.append(
                Modifier(
                    "lusutrombopag.window",
                    "procedure_window",
                    f"The procedure on {procedure} is {gap} days after day {COURSE_DAYS}; "
                    f"the label has it {low} to {high} days after.",
                )
            )
    first_day = procedure - days(PRE_PROCEDURE_DAYS)
    lows = [r for r in ctx.platelets if first_day <= r.date <= procedure and r.value < PRE_PROCEDURE_LOW]
    if lows:
        found.append(
            Modifier(
                "lusutrombopag.pre_procedure",
                "pre_procedure_platelets_low",
                f"{describe_count(lows[-1])}, within {PRE_PROCEDURE_DAYS} days of the procedure and below "
                f"{fmt(PRE_PROCEDURE_LOW)}: "
                "the clinician decides (the trials transfused).",
            )
        )
    if request.patient.child_pugh == "C" and ctx.region == "us":
        # `lusutrombopag.child_pugh_c`: US, a warning on whatever decided, before and during a course.
        # JP refers instead (before a start, and during a course after `lusutrombopag.complete`).
        found.append(
            Modifier(
                "lusutrombopag.child_pugh_c",
                "severe_hepatic_impairment",
                "Child-Pugh C: not studied in severe hepatic impairment.",
            )
        )
    return found


def standing_warnings(ctx: Context, decision: Decision) -> tuple[str, ...]:
    """Label warnings every lusutrombopag answer carries."""
    return ("lactation", "portal_vein_thrombosis")


RULES = DrugRules(PROFILE, decide, monitoring, modifiers, standing_warnings, source)
