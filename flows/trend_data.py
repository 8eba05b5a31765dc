"""The trend chart's data types (flows/trend.py builds them, bot/charts.py draws them): plain data, no drawing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from core.bands import Band, Bands
from flows.names import DRUG_NAMES, REGION_NAMES
from flows.state import LabRecord, TransfusionRecord

# The chart shows at most this many days, ending at the record's newest entry: half a year of weekly
# counts stays readable on a phone. A layout choice, not a rule.
WINDOW_DAYS = 182
# Rows read per source (newest first): a window's worth even for a daily tablet with every dose recorded.
ROWS_READ = 400
# The indications in a chart's title (flows.names.INDICATION_NAMES is too long for a phone's title line).
SHORT_INDICATIONS = {
    "itp": "ITP",
    "cit": "CIT",
    "cld_procedure": "CLD, before a procedure",
    "beta_thalassemia": "Beta-thalassaemia",
    "mds": "MDS",
}
TEST_NAMES = {"platelets": "Platelet count", "hemoglobin": "Haemoglobin"}
RESULT_NAMES = {"platelets": "platelet count", "hemoglobin": "haemoglobin result"}
RESULTS_NAMES = {"platelets": "platelet counts", "hemoglobin": "haemoglobin results"}
AXIS_UNITS = {"10^9/L": "×10⁹/L", "g/dL": "g/dL"}
# The actions as the card shows them (flows/followup.py writes the record's the same way).
ACTION_WORDS = {"decrease": "REDUCE", "complete": "COURSE COMPLETE"}


@dataclass(frozen=True, slots=True)
class DoseEntry:
    """A stored dose: given (or skipped, missed) on a day at an amount in the dosing unit."""

    date: dt.date
    amount: str
    unit: str
    status: str = "given"


@dataclass(frozen=True, slots=True)
class RecommendationEntry:
    """A recommendation given for the label (the audit): its date, action, dose and deciding rule."""

    decided: dt.date  # the consultation's date (the request's as_of)
    drug: str
    action: str
    rule: str
    dose_amount: str | None = None
    dose_unit: str | None = None
    next_dose_date: dt.date | None = None


@dataclass(frozen=True, slots=True)
class TrendRecord:
    """What storage read for one patient: the regimen's drug, indication and region, and the rows."""

    label: str
    drug: str | None
    indication: str | None
    region: str | None
    labs: tuple[LabRecord, ...] = ()
    doses: tuple[DoseEntry, ...] = ()
    transfusions: tuple[TransfusionRecord, ...] = ()
    recommendations: tuple[RecommendationEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Point:
    date: dt.date
    value: Decimal  # in the deciding unit (a result), or units (a transfusion)


@dataclass(frozen=True, slots=True)
class DoseStep:
    """The dose in effect from `start` up to `end` (exclusive, but the chart's last day is drawn):
    `amount` None means no treatment; `on_hold` shades the span."""

    start: dt.date
    end: dt.date
    amount: Decimal | None
    on_hold: bool


@dataclass(frozen=True, slots=True)
class Mark:
    """A recommendation on the chart: at its date, at the result it was decided on (None: no result)."""

    date: dt.date
    action: str
    text: str  # e.g. "INCREASE 4 mcg/kg"
    rule: str
    value: Decimal | None


@dataclass(frozen=True, slots=True)
class BandView:
    """A band with its words for the legend (the numbers are core's)."""

    band: Band
    text: str


@dataclass(frozen=True, slots=True)
class TrendChart:
    label: str
    drug: str
    indication: str
    region: str
    start: dt.date
    end: dt.date
    test: str  # the deciding test
    unit: str  # its deciding unit (core.bands.DECIDING_UNIT)
    points: tuple[Point, ...]
    bands: Bands
    band_views: tuple[BandView, ...]
    dose_unit: str
    steps: tuple[DoseStep, ...]
    marks: tuple[Mark, ...]
    transfusions: tuple[Point, ...]  # luspatercept only: units by date

    @property
    def title(self) -> str:
        """Short lines for a phone: who and which drug, the indication and label, then the dates."""
        indication = SHORT_INDICATIONS.get(self.indication, self.indication)
        return (
            f"{self.label} · {DRUG_NAMES.get(self.drug, self.drug)}\n"
            f"{indication} · {REGION_NAMES.get(self.region, self.region)}\n"
            f"{self.start.isoformat()} to {self.end.isoformat()}"
        )

    @property
    def value_axis(self) -> str:
        return f"{TEST_NAMES[self.test]} ({AXIS_UNITS.get(self.unit, self.unit)})"

    @property
    def dose_axis(self) -> str:
        return f"Dose ({self.dose_unit})"
