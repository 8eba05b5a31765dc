"""The deciding result's threshold bands of a drug, as data for a trend chart (issue 14).

Why here: a band's edge is a clinical threshold, so it is read from the drug module's own constant
(one source for each number, tests/test_one_source.py), never retyped where the chart is drawn.
Each band names the rule id of RULES.md that acts on it and the condition under which it acts;
the chart draws them, `flows` words them. No chat words and no drawing here.

Bands are where a *single* result decides. Rules that compare two results (romiplostim's "2
consecutive weeks" is a band with its condition; luspatercept's rise of more than 2.0 g/dL within
21 days, `luspatercept.hb_rise`, is not an edge on the axis) or count transfusions
(`luspatercept.increase`, `luspatercept.no_response`) are not bands: the chart shows their
decisions as marks instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from core import hetrombopag, luspatercept, lusutrombopag, romiplostim
from core.models import LabTest
from core.registry import rules_for

BandAction = Literal["increase", "reduce", "hold", "resume", "start", "stop", "low_before_procedure"]
# When a band acts (the chart words these; the rules are in RULES.md under the band's rule id).
Condition = Literal[
    "always",
    "on_hold",  # only while the dose is held
    "two_weeks",  # the count and the one 4 to 10 days before it both in the band (romiplostim.reduce)
    "after_two_weeks_at_level",  # at least 14 days at the level (hetrombopag.wait before it)
    "no_transfusion",  # in the absence of transfusion for 21 days before it (luspatercept.hb_high)
    "before_start",  # only before the first dose (lusutrombopag.start / not_low)
    "from_day_5_jp",  # JP, day 5 onwards, and a rise over the baseline (lusutrombopag.jp_stop)
    "before_procedure",  # counts dated 2 days before the procedure to its day (lusutrombopag.pre_procedure)
]


@dataclass(frozen=True, slots=True)
class Band:
    """Results between `low` and `high` (None: open) act through `rule`; `*_inclusive` says whether an
    edge itself is in the band (RULES.md 0, "Bounds": "above" and "below" are strict)."""

    action: BandAction
    rule: str
    condition: Condition
    low: Decimal | None = None
    high: Decimal | None = None
    low_inclusive: bool = False
    high_inclusive: bool = False

    def holds(self, value: Decimal) -> bool:
        """Whether a result in the deciding unit lies in the band (its condition aside)."""
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            return False
        return not (self.high is not None and (value > self.high or (value == self.high and not self.high_inclusive)))


@dataclass(frozen=True, slots=True)
class Bands:
    """A drug's bands for one indication and region, on its deciding test in the deciding unit."""

    drug: str
    indication: str
    region: str
    test: LabTest
    unit: str  # the deciding unit: "10^9/L" or "g/dL" (RULES.md 0, "Units")
    bands: tuple[Band, ...]
    # lusutrombopag JP: the stop band needs the count this much above the baseline (JP_STOP_RISE), and
    # the baseline it was drawn for (None: not known; the stop edge is then NOT_LOW alone)
    rise_over_baseline: Decimal | None = None
    baseline: Decimal | None = None

    def edges(self) -> list[Decimal]:
        """Every threshold drawn, lowest first, once each."""
        return sorted({edge for band in self.bands for edge in (band.low, band.high) if edge is not None})


DECIDING_UNIT: dict[LabTest, str] = {"platelets": "10^9/L", "hemoglobin": "g/dL"}


def _titrated(
    drug: str,
    increase_below: Decimal,
    reduce_above: Decimal,
    hold_above: Decimal,
    resume_below: Decimal,
    increase_when: Condition,
    reduce_when: Condition,
) -> tuple[Band, ...]:
    """A TPO receptor agonist titrated on the count (romiplostim, hetrombopag): the same four bands, each
    drug's own edges and conditions; the reduce band ends where the hold band begins (hold is tried first)."""
    return (
        Band("increase", f"{drug}.increase", increase_when, high=increase_below),
        Band("reduce", f"{drug}.reduce", reduce_when, low=reduce_above, high=hold_above, high_inclusive=True),
        Band("hold", f"{drug}.hold", "always", low=hold_above),
        Band("resume", f"{drug}.resume", "on_hold", high=resume_below),
    )


def _romiplostim(region: str) -> tuple[Band, ...]:
    limits = romiplostim.THRESHOLDS[region]
    return _titrated(
        "romiplostim",
        romiplostim.LOW,
        limits.reduce_above,
        limits.hold_above,
        limits.resume_below,
        "always",
        "two_weeks",
    )


def _hetrombopag(indication: str) -> tuple[Band, ...]:
    # hetrombopag.wait comes first: a change needs at least MIN_DAYS_TO_JUDGE days at the level.
    return _titrated(
        "hetrombopag",
        hetrombopag.LADDERS[indication].low,
        hetrombopag.REDUCE_ABOVE,
        hetrombopag.HOLD_ABOVE,
        hetrombopag.RESUME_BELOW,
        "after_two_weeks_at_level",
        "after_two_weeks_at_level",
    )


def jp_stop_from(baseline: Decimal | None) -> Decimal:
    """The lowest count that stops a JP course from day 5 (`lusutrombopag.jp_stop`): at least NOT_LOW
    and at least JP_STOP_RISE above the baseline (both "at least": the edge is in the band). Without
    a baseline the rule cannot stop the course; the edge drawn is then NOT_LOW alone."""
    if baseline is None:
        return lusutrombopag.NOT_LOW
    return max(lusutrombopag.NOT_LOW, baseline + lusutrombopag.JP_STOP_RISE)


def _lusutrombopag(region: str, baseline: Decimal | None) -> tuple[Band, ...]:
    # A one-week course with no titration: the count decides whether it starts (below NOT_LOW), whether
    # the pre-procedure warning is raised (below PRE_PROCEDURE_LOW), and in JP whether it stops early.
    bands = [
        Band("start", "lusutrombopag.start", "before_start", high=lusutrombopag.NOT_LOW),
        Band(
            "low_before_procedure",
            "lusutrombopag.pre_procedure",
            "before_procedure",
            high=lusutrombopag.PRE_PROCEDURE_LOW,
        ),
    ]
    if region == "jp":
        stop = jp_stop_from(baseline)
        bands.append(Band("stop", "lusutrombopag.jp_stop", "from_day_5_jp", low=stop, low_inclusive=True))
    return tuple(bands)


def _luspatercept() -> tuple[Band, ...]:
    return (
        Band("hold", "luspatercept.hb_high", "no_transfusion", low=luspatercept.HOLD_AT_OR_ABOVE, low_inclusive=True),
        Band("resume", "luspatercept.resume", "on_hold", high=luspatercept.RESUME_AT_OR_BELOW, high_inclusive=True),
    )


def bands_for(drug: str, indication: str, region: str | None = None, baseline: Decimal | None = None) -> Bands:
    """The bands of `drug` for the indication and region (None: the drug's default region).

    `baseline`: lusutrombopag's baseline count (the latest on or before day 1), which moves the JP
    stop edge (`jp_stop_from`); the other drugs' bands do not depend on the patient.

    Raises KeyError for a drug, indication or region the rules do not know.
    """
    profile = rules_for(drug).profile
    region = region or profile.default_region
    if region not in profile.regions or indication not in profile.indications:
        raise KeyError(f"{drug}: no rules for {indication} in {region}")
    rise: Decimal | None = None
    if drug == "romiplostim":
        bands = _romiplostim(region)
    elif drug == "hetrombopag":
        bands = _hetrombopag(indication)
    elif drug == "lusutrombopag":
        bands = _lusutrombopag(region, baseline)
        rise = lusutrombopag.JP_STOP_RISE if region == "jp" else None
    else:
        bands = _luspatercept()
    test = profile.deciding_test
    return Bands(drug, indication, region, test, DECIDING_UNIT[test], bands, rise, baseline if rise else None)
