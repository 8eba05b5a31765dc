"""Luspatercept: subcutaneous every 3 weeks in beta-thalassaemia and MDS (RULES.md section 4)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from core.framework import (
    CONVENTIONS_SOURCE,
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
    describe_hb,
    not_a_level,
    one_per_date,
    refer,
)
from core.numbers import fmt

PROFILE = DrugProfile(
    drug="luspatercept",
    dosing_unit="mg/kg",
    total_unit="mg",
    weight_based=True,
    interval_days=21,
    indications=("beta_thalassemia", "mds"),
    regions=("us",),
    deciding_test="hemoglobin",
    packaging=Packaging(
        concentration_per_ml=Decimal(50),
        vial_sizes=(Decimal(75), Decimal(25)),
        max_ml_per_injection=Decimal("1.2"),
    ),
)

_D = Decimal


@dataclass(frozen=True, slots=True)
class Ladder:
    """One indication's dose levels (mg/kg) and the levels an increase may start from (RULES.md section 4)."""

    levels: tuple[Decimal, ...]  # lowest first; the last is the maximum
    increase_from: tuple[Decimal, ...]

    @property
    def maximum(self) -> Decimal:
        """The highest level: no increase beyond it."""
        return self.levels[-1]

    def up(self, level: Decimal) -> Decimal:
        """One level higher; callers check `increase_from` first, so there always is one."""
        return self.levels[self.levels.index(level) + 1]

    def down(self, level: Decimal) -> Decimal | None:
        """One level lower; None below the lowest (discontinue)."""
        index = self.levels.index(level)
        return self.levels[index - 1] if index else None


LADDERS = {
    "beta_thalassemia": Ladder(levels=(_D("0.6"), _D("0.8"), _D("1"), _D("1.25")), increase_from=(_D("1"),)),
    "mds": Ladder(levels=(_D("0.6"), _D("0.8"), _D("1"), _D("1.33"), _D("1.75")), increase_from=(_D("1"), _D("1.33"))),
}
START = _D(1)
HOLD_AT_OR_ABOVE = _D("11.5")
RESUME_AT_OR_BELOW = _D("11.0")
RISE_ABOVE = _D("2.0")
RISE_WINDOW_DAYS = 21
TRANSFUSION_FREE_DAYS = 21
SEVERE_GRADE = 3
INCREASE_AFTER_DOSES = 2
NO_RESPONSE_AFTER_DOSES = 3
TWELVE_WEEKS_DAYS = 84

_PI = "Reblozyl US PI (2020-2023 text)"
_SOURCES = {
    "luspatercept.hypersensitivity": f"{_PI} 2.3 and 5",
    "luspatercept.adverse_reaction": f"{_PI} 2.3",
    "luspatercept.start": f"{_PI} 2.1 and 2.2",
    "luspatercept.resume": f"{_PI} 2.3; Reblozyl Japan PI (restart dose)",
    "luspatercept.increase": f"{_PI} 2.1 and 2.2; Reblozyl US HCP dosing pages",
    "luspatercept.no_response": f"{_PI} 2.1 and 2.2",
    "dose.split_injection": f"{_PI} 2.1-2.3",
}


def source(rule: str, region: str) -> str:
    """The document a rule id comes from (the US PI section, or the conventions), for the rationale."""
    if rule.startswith("lab.") or rule in ("dose.late", "value.unusual"):
        return CONVENTIONS_SOURCE
    if rule == "dose.not_a_level":
        return f"{_PI} 2.1-2.3; {CONVENTIONS_SOURCE}"
    return _SOURCES.get(rule, f"{_PI} 2.3")


def decide(ctx: Context) -> Decision:
    """The action for one request (RULES.md section 4), judged from haemoglobin and transfusions.

    An adverse reaction is judged first (discontinue or refer), then the level, the fresh result and the rules."""
    request = ctx.request
    ladder = LADDERS[request.indication]
    dose = request.current_dose
    reaction = request.adverse_reaction
    if reaction is not None:
        severe = reaction.grade >= SEVERE_GRADE
        if dose is not None and severe and reaction.hypersensitivity:
            return Decision(
                "discontinue",
                "luspatercept.hypersensitivity",
                f"Grade {reaction.grade} hypersensitivity reaction on treatment: discontinue.",
            )
        if severe or dose is None:
            return refer(
                "luspatercept.adverse_reaction",
                f"Adverse reaction grade {reaction.grade}"
                f"{' before the first dose' if dose is None else ''}: the label's management of "
                "this case was not confirmed; the clinician decides.",
            )
    if dose is not None and (outside := not_a_level(dose.amount, ladder.levels, "mg/kg")) is not None:
        return outside
    hb = deciding_or_refer(ctx)
    if isinstance(hb, Decision):  # no fresh result: refer (RULES.md 0)
        return hb
    seen = describe_hb(hb)

    if dose is None:
        if hb.value >= HOLD_AT_OR_ABOVE:
            return refer("luspatercept.start", f"Not started: {seen}, {HOLD_AT_OR_ABOVE} or more.")
        weeks = PROFILE.interval_days // 7
        return Decision(
            "start", "luspatercept.start", f"Start at {fmt(START)} mg/kg every {weeks} weeks ({seen}).", dose=START
        )

    current = dose.amount
    if request.on_hold:
        if hb.value <= RESUME_AT_OR_BELOW:
            return Decision(
                "resume",
                "luspatercept.resume",
                f"{seen}, {RESUME_AT_OR_BELOW} or less: resume at the pre-hold {fmt(current)} mg/kg.",
                dose=current,
            )
        return Decision("hold", "luspatercept.still_held", f"{seen}, above {RESUME_AT_OR_BELOW}: keep holding.")

    if hb.value >= HOLD_AT_OR_ABOVE and not _transfused(ctx, hb.date - days(TRANSFUSION_FREE_DAYS), hb.date):
        return Decision(
            "hold",
            "luspatercept.hb_high",
            f"{seen}, {HOLD_AT_OR_ABOVE} or more with no transfusion in the {TRANSFUSION_FREE_DAYS} days before: "
            "interrupt the dose.",
        )
    earlier = _rise_from(ctx, hb)
    if earlier is not None:
        rise = (
            f"{seen}, {fmt(hb.value - earlier.value)} above {fmt(earlier.value)} on {earlier.date} "
            "with no transfusion between"
        )
        lowered = ladder.down(current)
        if lowered is None:
            return Decision("discontinue", "luspatercept.hb_rise", f"{rise}, already at the lowest level: discontinue.")
        return Decision(
            "decrease",
            "luspatercept.hb_rise",
            f"{rise}: reduce from {fmt(current)} to {fmt(lowered)} mg/kg.",
            dose=lowered,
        )

    doses = ctx.doses_at_level
    indication = request.indication
    if reaction is None and doses >= INCREASE_AFTER_DOSES and current in ladder.increase_from:
        response = _no_response_for_increase(ctx)
        if response is None:
            return refer(
                "luspatercept.increase",
                f"{doses} doses at {fmt(current)} mg/kg: an increase depends on the baseline transfusion "
                "burden, which is missing.",
                "missing_input",
            )
        if response:
            raised = ladder.up(current)
            reason = (
                "no reduction in transfusion burden"
                if indication == "beta_thalassemia"
                else "not transfusion-free at this level"
            )
            return Decision(
                "increase",
                "luspatercept.increase",
                f"{doses} doses at {fmt(current)} mg/kg and {reason}: increase to {fmt(raised)} mg/kg.",
                dose=raised,
            )
    if current == ladder.maximum and doses >= NO_RESPONSE_AFTER_DOSES:
        burden_unchanged = _no_burden_reduction(ctx)
        if burden_unchanged is None:
            return refer(
                "luspatercept.no_response",
                f"{doses} doses at the maximum {fmt(current)} mg/kg: judging response needs the baseline "
                "transfusion burden, which is missing.",
                "missing_input",
            )
        if burden_unchanged:
            return Decision(
                "discontinue",
                "luspatercept.no_response",
                f"{doses} doses at the maximum {fmt(current)} mg/kg with no reduction in transfusion "
                "burden: discontinue.",
                warnings=("no_response",),
            )
    return Decision("continue", "luspatercept.continue", f"{seen}: continue at {fmt(current)} mg/kg.", dose=current)


def _transfused(ctx: Context, first: dt.date, last: dt.date) -> bool:
    """A transfusion dated from `first` to `last - 1` (a haemoglobin is the pre-transfusion value)."""
    return any(first <= t.date < last for t in ctx.request.transfusions)


def _rise_from(ctx: Context, hb: Result) -> Result | None:
    """A value in the 21 days before `hb` that it exceeds by more than 2.0 with no transfusion between."""
    for earlier in sorted(one_per_date(ctx.hemoglobin), key=lambda r: r.date):
        if (
            hb.date - days(RISE_WINDOW_DAYS) <= earlier.date < hb.date
            and hb.value - earlier.value > RISE_ABOVE
            and not _transfused(ctx, earlier.date, hb.date)
        ):
            return earlier
    return None


def _no_burden_reduction(ctx: Context) -> bool | None:
    """Units since `since`, scaled to 12 weeks, not below the baseline; None when there is no baseline."""
    baseline = ctx.request.baseline_rbc_units_per_12_weeks
    if baseline is None:
        return None
    dose = ctx.request.current_dose
    assert dose is not None
    units = sum((t.units for t in ctx.request.transfusions if dose.since <= t.date <= ctx.as_of), _D(0))
    days = max(1, (ctx.as_of - dose.since).days)
    return units * TWELVE_WEEKS_DAYS >= baseline * days  # exact: units x 84 / days >= baseline


def _no_response_for_increase(ctx: Context) -> bool | None:
    if ctx.request.indication == "beta_thalassemia":
        return _no_burden_reduction(ctx)
    dose = ctx.request.current_dose
    assert dose is not None
    return any(t.date >= dose.since for t in ctx.request.transfusions)  # not transfusion-free at this level


def monitoring(ctx: Context, decision: Decision, next_dose: dt.date | None) -> dt.date | None:
    """Pre-dose haemoglobin before every dose; weekly on hold; none after discontinuation."""
    if decision.action == "discontinue":
        return None
    if decision.action == "hold" or next_dose is None:
        return ctx.as_of + ONE_WEEK
    if next_dose == ctx.as_of:
        return ctx.as_of + days(PROFILE.interval_days)
    return next_dose


def modifiers(ctx: Context, decision: Decision, next_dose: dt.date | None) -> list[Modifier]:
    """None for luspatercept: the rules add no situational warning to its decision."""
    return []


def standing_warnings(ctx: Context, decision: Decision) -> tuple[str, ...]:
    """Label warnings every answer carries; beta-thalassaemia adds extramedullary haematopoiesis."""
    common = ("embryo_fetal_toxicity", "hypertension", "label_update_pending", "thrombosis_risk")
    if ctx.request.indication == "beta_thalassemia":
        return (*common, "extramedullary_hematopoiesis")
    return common


RULES = DrugRules(PROFILE, decide, monitoring, modifiers, standing_warnings, source)
