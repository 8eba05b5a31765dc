"""What every drug shares (RULES.md section 0): profiles as data, the per-request context,
the deciding-lab check, and the decision record that the builder turns into a response.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from core.models import Action, DoseRequest, LabTest
from core.numbers import fmt
from core.units import HEMOGLOBIN_FACTORS, PLATELET_FACTORS, PLAUSIBILITY

_DAY_SPANS = tuple(dt.timedelta(days=n) for n in range(64))  # made once: dates are shifted on every request


def days(n: int) -> dt.timedelta:
    """A span of `n` days (shared objects for the common small spans)."""
    return _DAY_SPANS[n] if 0 <= n < len(_DAY_SPANS) else dt.timedelta(days=n)


ONE_DAY = days(1)
ONE_WEEK = days(7)
FOUR_WEEKS = days(28)
FRESH_DAYS = 7
_FRESH = days(FRESH_DAYS)

CONVENTIONS_SOURCE = "HemaDose ruleset v1.1, section 0 (conventions)"
# The actions whose decision gives a dose (a level for the next administration): the engine checks
# the decision carries one, and the reminders plan dose days for them.
DOSE_ACTIONS: frozenset[Action] = frozenset({"start", "continue", "increase", "decrease", "resume"})
PLATELETS_BOUNDS = (PLAUSIBILITY["platelets"].low, PLAUSIBILITY["platelets"].high)
HEMOGLOBIN_BOUNDS = (PLAUSIBILITY["hemoglobin"].low, PLAUSIBILITY["hemoglobin"].high)


@dataclass(frozen=True, slots=True)
class Packaging:
    """How an injectable is prepared: concentration, vials, dilution, volume per injection site."""

    concentration_per_ml: Decimal
    vial_sizes: tuple[Decimal, ...]  # deliverable content, largest first
    dilute_below: Decimal | None = None  # total below this is diluted (romiplostim: 23 mcg)
    diluted_concentration_per_ml: Decimal | None = None
    max_ml_per_injection: Decimal | None = None


@dataclass(frozen=True, slots=True)
class DrugProfile:
    """The fixed facts of a drug that every rule uses."""

    drug: str
    dosing_unit: str  # mcg/kg, mg/kg or mg
    total_unit: str  # mcg or mg
    weight_based: bool
    interval_days: int
    indications: tuple[str, ...]
    regions: tuple[str, ...]  # the first is the default
    deciding_test: LabTest
    packaging: Packaging | None = None  # None: tablets

    @property
    def default_region(self) -> str:
        """The region used when a request names none: the first listed."""
        return self.regions[0]

    @property
    def injected(self) -> bool:
        """Given by injection (it has packaging: vials, a concentration); else tablets by mouth."""
        return self.packaging is not None


class Result(NamedTuple):
    """One lab result in the deciding unit; `position` keeps the listed order for ties."""

    date: dt.date
    value: Decimal
    position: int


def latest(
    results: Sequence[Result], *, on_or_after: dt.date | None = None, on_or_before: dt.date | None = None
) -> Result | None:
    """The latest result in the window; of two on one date, the one listed last (section 0)."""
    best: Result | None = None
    for result in results:
        if on_or_after is not None and result.date < on_or_after:
            continue
        if on_or_before is not None and result.date > on_or_before:
            continue
        if best is None or (result.date, result.position) > (best.date, best.position):
            best = result
    return best


def one_per_date(results: Sequence[Result]) -> list[Result]:
    """Where two results share a date, the one listed last counts."""
    by_date: dict[dt.date, Result] = {}
    for result in results:
        by_date[result.date] = result
    return list(by_date.values())


@dataclass(slots=True)
class Context:
    """A validated request with its derived facts, computed once."""

    request: DoseRequest
    profile: DrugProfile
    region: str
    as_of: dt.date
    platelets: list[Result]
    hemoglobin: list[Result]
    deciding: Result | None  # the latest deciding result on or before as_of (section 0)
    first_implausible: Result | None  # the first lab, in listed order, outside the plausibility bounds

    @classmethod
    def of(cls, request: DoseRequest, profile: DrugProfile) -> Context:
        """One pass over the labs: convert each value once, note the deciding and implausible ones.

        Call after the shape checks: every lab is then dated on or before `as_of`, so the deciding
        result is simply the latest (of two on one date, the one listed last).
        """
        platelets: list[Result] = []
        hemoglobin: list[Result] = []
        deciding: Result | None = None
        implausible: Result | None = None
        deciding_test = profile.deciding_test
        for position, lab in enumerate(request.labs):
            if lab.test == "platelets":
                result = Result(lab.date, lab.value * PLATELET_FACTORS[lab.unit], position)
                platelets.append(result)
                low, high = PLATELETS_BOUNDS
            else:
                result = Result(lab.date, lab.value * HEMOGLOBIN_FACTORS[lab.unit], position)
                hemoglobin.append(result)
                low, high = HEMOGLOBIN_BOUNDS
            if implausible is None and not low <= result.value <= high:
                implausible = result
            if lab.test == deciding_test and (deciding is None or result.date >= deciding.date):
                deciding = result
        return cls(
            request,
            profile,
            request.region or profile.regions[0],
            request.as_of,
            platelets,
            hemoglobin,
            deciding,
            implausible,
        )

    @property
    def days_at_level(self) -> int:
        """Days since the current dose began (`since`): rules that wait at a level count from it."""
        dose = self.request.current_dose
        assert dose is not None
        return (self.as_of - dose.since).days

    @property
    def doses_at_level(self) -> int:
        """As given, else estimated from `since`, `last_given` and the interval (section 0)."""
        dose = self.request.current_dose
        assert dose is not None
        if dose.doses_at_level is not None:
            return dose.doses_at_level
        return (dose.last_given - dose.since).days // self.profile.interval_days + 1


STABLE_DAYS = 28
STABLE_MIN_COUNTS = 3


def is_stable(ctx: Context, low: Decimal, high: Decimal) -> bool:
    """Monthly monitoring's "stable" (RULES.md 1 and 2, v1.1): at least 28 days at the level, at
    least 3 counts dated from `since` to `as_of`, and every one of them between `low` and `high`.

    The caller checks that the action is `continue`. Reading chosen (ambiguous in RULES.md 1/2
    "at least 3 platelet counts"; the safer one, since fewer counts keep monitoring weekly): the
    counts are counted by distinct date, so two results on one date are one count; "every one of
    them" is checked on all results, a superseded one on the same date included (RULES.md 8).
    """
    dose = ctx.request.current_dose
    if dose is None or ctx.days_at_level < STABLE_DAYS:
        return False
    counts = [r for r in ctx.platelets if dose.since <= r.date <= ctx.as_of]
    if len({r.date for r in counts}) < STABLE_MIN_COUNTS:
        return False  # one or two counts do not show stability
    return all(low <= r.value <= high for r in counts)


@dataclass(slots=True)
class Decision:
    """What the deciding rule says; the builder adds totals, dates, modifiers and warnings."""

    action: Action
    rule: str
    text: str
    dose: Decimal | None = None  # the level for the next administration
    warnings: tuple[str, ...] = ()
    next_dose_date: dt.date | None = None  # set only where the drug's rules fix it
    schedule: list[dt.date] | None = None  # likewise
    monitor_on: dt.date | None = None  # set only where the rule fixes it (a lab refer)

    def __post_init__(self) -> None:
        if self.text[:1].islower():  # texts often open with a lab ("platelets 32 ...")
            self.text = self.text[0].upper() + self.text[1:]


class Modifier(NamedTuple):
    """A warning added by a modifier rule, with its rationale entry (section 0, "Rationale")."""

    rule: str
    code: str
    text: str


@dataclass(slots=True)
class Dispensing:
    """The dose as given: absolute total, volume, injections and vials."""

    total: Decimal
    volume_ml: Decimal | None = None
    injections: int | None = None
    vials: Sequence[tuple[int | float, int]] = ()  # (size as a JSON number, count), largest first
    modifiers: list[Modifier] = field(default_factory=list)


def refer(rule: str, text: str, *warnings: str, monitor_on: dt.date | None = None) -> Decision:
    """A `refer` decision: where the rules are silent or unsafe the clinician decides, never a guessed dose."""
    return Decision("refer", rule, text, warnings=warnings, monitor_on=monitor_on)


def deciding_or_refer(ctx: Context) -> Result | Decision:
    """The fresh deciding result, or the `lab.missing` / `lab.stale` refer with a test today."""
    refusal = check_deciding_lab(ctx)
    if refusal is not None:
        return refusal
    assert ctx.deciding is not None  # fresh, so present
    return ctx.deciding


def not_a_level(amount: Decimal, levels: Sequence[Decimal], unit: str, where: str = "") -> Decision | None:
    """`dose.not_a_level`: a current dose that is not one of the drug's levels is referred."""
    if amount in levels:
        return None
    listed = ", ".join(fmt(level) for level in levels)
    return refer(
        "dose.not_a_level",
        f"Current dose {fmt(amount)} {unit} is not a level{where} ({listed} {unit}).",
        "dose_outside_label",
    )


def check_deciding_lab(ctx: Context) -> Decision | None:
    """`lab.missing` / `lab.stale`: no fresh deciding result means refer, with a test today."""
    test = ctx.profile.deciding_test
    name = "platelet count" if test == "platelets" else "haemoglobin"
    result = ctx.deciding
    if result is None:
        return refer(
            "lab.missing",
            f"No {name} on or before {ctx.as_of}: a result is needed to decide.",
            "missing_lab",
            monitor_on=ctx.as_of,
        )
    if result.date < ctx.as_of - _FRESH:
        return refer(
            "lab.stale",
            f"The latest {name} is from {result.date}, more than {FRESH_DAYS} days before {ctx.as_of}: "
            "repeat it before deciding.",
            "stale_lab",
            monitor_on=ctx.as_of,
        )
    return None


def describe_count(result: Result) -> str:
    """A platelet result as reason texts quote it, with its date, so the reader sees what was used."""
    return f"platelets {fmt(result.value)} x10^9/L on {result.date.isoformat()}"


def describe_hb(result: Result) -> str:
    """A haemoglobin result as reason texts quote it, with its date, so the reader sees what was used."""
    return f"haemoglobin {fmt(result.value)} g/dL on {result.date.isoformat()}"


# A drug's rules as the engine sees them.
DecideFn = Callable[[Context], Decision]
MonitoringFn = Callable[[Context, Decision, "dt.date | None"], "dt.date | None"]
ModifiersFn = Callable[[Context, Decision, "dt.date | None"], list[Modifier]]
StandingFn = Callable[[Context, Decision], tuple[str, ...]]
SourceFn = Callable[[str, str], str]


@dataclass(frozen=True, slots=True)
class DrugRules:
    """One drug's module, registered by name (see core.registry)."""

    profile: DrugProfile
    decide: DecideFn
    monitoring: MonitoringFn
    modifiers: ModifiersFn
    standing_warnings: StandingFn
    source: SourceFn
