"""Hetrombopag: daily oral tablet in ITP and chemotherapy-induced thrombocytopenia (RULES.md section 2).

Only the ITP start and maximum are from the NMPA label; everything else is protocol-derived
(the hetrombopag dose-modification guide, a seed document) and says so with the `protocol_derived` info.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

from core.framework import (
    CONVENTIONS_SOURCE,
    FOUR_WEEKS,
    ONE_WEEK,
    Context,
    Decision,
    DrugProfile,
    DrugRules,
    Modifier,
    days,
    deciding_or_refer,
    describe_count,
    is_stable,
    not_a_level,
    refer,
)
from core.numbers import fmt

PROFILE = DrugProfile(
    drug="hetrombopag",
    dosing_unit="mg",
    total_unit="mg",
    weight_based=False,
    interval_days=1,
    indications=("itp", "cit"),
    regions=("cn",),
    deciding_test="platelets",
)


@dataclass(frozen=True, slots=True)
class Ladder:
    """One indication's dose levels and the steps between them (RULES.md section 2), as data the rules read."""

    start: Decimal
    levels: tuple[Decimal, ...]
    up: dict[Decimal, Decimal]  # current level -> the level an increase goes to
    down: dict[Decimal, Decimal]  # current level -> the level a decrease goes to
    low: Decimal  # increase below this count

    @property
    def maximum(self) -> Decimal:
        """The highest level: a low count there continues at it with a `max_dose` warning (`hetrombopag.max_dose`)."""
        return max(self.levels)


_D = Decimal
_CIT_LEVELS = tuple(_D("2.5") * n for n in range(1, 7))
LADDERS = {
    # ITP: 3.75 mg is a level but not a rung: from it, up goes to 5 and down to 2.5.
    "itp": Ladder(
        start=_D("2.5"),
        levels=(_D("2.5"), _D("3.75"), _D("5"), _D("7.5")),
        up={_D("2.5"): _D("5"), _D("3.75"): _D("5"), _D("5"): _D("7.5")},
        down={_D("7.5"): _D("5"), _D("5"): _D("2.5"), _D("3.75"): _D("2.5")},
        low=_D(50),
    ),
    "cit": Ladder(
        start=_D("7.5"),
        levels=_CIT_LEVELS,
        up=dict(pairwise(_CIT_LEVELS)),
        down={higher: lower for lower, higher in pairwise(_CIT_LEVELS)},
        low=_D(100),
    ),
}
HOLD_ABOVE = _D(400)
REDUCE_ABOVE = _D(250)
RESUME_BELOW = _D(150)
RESUME_STEP = _D("2.5")
CIT_TARGET = _D(100)
MIN_DAYS_TO_JUDGE = 14
TWICE_WEEKLY = days(3)

_LABEL = "NMPA label (Hengqu)"
_SEED = "hetrombopag dose-modification guide, protocol-derived"


def source(rule: str, region: str) -> str:
    """The document a rule id comes from, so each rationale names its source (NMPA label or the guide)."""
    if rule.startswith("lab.") or rule in ("dose.missed", "value.unusual"):
        return CONVENTIONS_SOURCE
    if rule == "hetrombopag.start":
        return (
            f"{_LABEL} (ITP start {fmt(LADDERS['itp'].start)} mg); {_SEED} (CIT start {fmt(LADDERS['cit'].start)} mg)"
        )
    if rule in ("hetrombopag.max_dose", "dose.not_a_level"):
        return f"{_LABEL} (ITP maximum {fmt(LADDERS['itp'].maximum)} mg); {_SEED}"
    return _SEED


def decide(ctx: Context) -> Decision:
    """The action for one request (RULES.md section 2), with the rule id that decided it.

    Each branch names its rule id; a dose not on the ladder or no fresh count refers first."""
    request = ctx.request
    ladder = LADDERS[request.indication]
    dose = request.current_dose
    if (
        dose is not None
        and (outside := not_a_level(dose.amount, ladder.levels, "mg", f" in {request.indication.upper()}")) is not None
    ):
        return outside
    count = deciding_or_refer(ctx)
    if isinstance(count, Decision):  # no fresh result: refer (RULES.md 0)
        return count
    seen = describe_count(count)
    low = ladder.low

    if dose is None:
        if count.value > HOLD_ABOVE:
            return refer("hetrombopag.start", f"Not started: {seen}, above {fmt(HOLD_ABOVE)}.", "platelets_high")
        return Decision(
            "start", "hetrombopag.start", f"Start at {fmt(ladder.start)} mg once daily ({seen}).", dose=ladder.start
        )

    current = dose.amount
    if request.on_hold:
        if count.value < RESUME_BELOW:
            resumed = current - RESUME_STEP
            if resumed not in ladder.levels:
                return refer(
                    "hetrombopag.resume",
                    f"{seen}, below {fmt(RESUME_BELOW)}: {fmt(current)} mg minus {fmt(RESUME_STEP)} mg is not a level.",
                )
            return Decision(
                "resume",
                "hetrombopag.resume",
                f"{seen}, below {fmt(RESUME_BELOW)}: resume at {fmt(resumed)} mg "
                f"(pre-hold {fmt(current)} minus {fmt(RESUME_STEP)}).",
                dose=resumed,
            )
        return Decision("hold", "hetrombopag.still_held", f"{seen}, not below {fmt(RESUME_BELOW)}: keep holding.")

    if count.value > HOLD_ABOVE:
        return Decision(
            "hold",
            "hetrombopag.hold",
            f"{seen}, above {fmt(HOLD_ABOVE)}: interrupt treatment.",
            warnings=("platelets_high",),
        )
    days = ctx.days_at_level
    if days < MIN_DAYS_TO_JUDGE and (count.value < low or count.value > REDUCE_ABOVE):
        return Decision(
            "continue",
            "hetrombopag.wait",
            f"{seen}, but only {days} days at {fmt(current)} mg: a change needs at least "
            f"{MIN_DAYS_TO_JUDGE} days at the current dose to judge.",
            dose=current,
        )
    if count.value < low:
        if current == ladder.maximum:
            return Decision(
                "continue",
                "hetrombopag.max_dose",
                f"{seen}, below {fmt(low)} at the maximum {fmt(current)} mg: continue.",
                dose=current,
                warnings=("max_dose",),
            )
        raised = ladder.up[current]
        return Decision(
            "increase",
            "hetrombopag.increase",
            f"{seen}, below {fmt(low)}: increase from {fmt(current)} to {fmt(raised)} mg.",
            dose=raised,
        )
    if count.value > REDUCE_ABOVE:
        lowered = ladder.down.get(current)
        if lowered is None:
            return refer(
                "hetrombopag.reduce", f"{seen}, above {fmt(REDUCE_ABOVE)}, at the lowest level {fmt(current)} mg."
            )
        return Decision(
            "decrease",
            "hetrombopag.reduce",
            f"{seen}, above {fmt(REDUCE_ABOVE)}: reduce from {fmt(current)} to {fmt(lowered)} mg.",
            dose=lowered,
        )
    warnings = ("cit_target_reached",) if request.indication == "cit" and count.value >= CIT_TARGET else ()
    return Decision(
        "continue", "hetrombopag.continue", f"{seen}: continue at {fmt(current)} mg.", dose=current, warnings=warnings
    )


def monitoring(ctx: Context, decision: Decision, next_dose: dt.date | None) -> dt.date | None:
    """Weekly; twice weekly on hold; monthly once stable (continue, 28 days, 3 or more counts in range)."""
    if decision.action == "hold":
        return ctx.as_of + TWICE_WEEKLY
    if decision.action == "continue" and is_stable(ctx, LADDERS[ctx.request.indication].low, REDUCE_ABOVE):
        return ctx.as_of + FOUR_WEEKS
    return ctx.as_of + ONE_WEEK


def modifiers(ctx: Context, decision: Decision, next_dose: dt.date | None) -> list[Modifier]:
    """None for hetrombopag: the rules add no situational warning to its decision."""
    return []


def standing_warnings(ctx: Context, decision: Decision) -> tuple[str, ...]:
    """Warnings every answer carries; `protocol_derived` unless the decision rests on the label alone."""
    label_only = (
        (decision.action == "start" and ctx.request.indication == "itp")
        or decision.rule.startswith("lab.")
        or decision.rule == "dose.not_a_level"
    )
    standing = ("empty_stomach", "thrombosis_risk")
    return standing if label_only else (*standing, "protocol_derived")


RULES = DrugRules(PROFILE, decide, monitoring, modifiers, standing_warnings, source)
