"""Units and plausibility (RULES.md section 0, "Units" and "Plausibility").

Every lab value is converted exactly (Decimal, never rounded first) to the unit rules decide in:
platelets in x10^9/L, haemoglobin in g/dL.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

PLATELET_FACTORS: dict[str, Decimal] = {
    "10^9/L": Decimal(1),
    "10^3/uL": Decimal(1),
    "G/L": Decimal(1),
    "/uL": Decimal("0.001"),
}
HEMOGLOBIN_FACTORS: dict[str, Decimal] = {
    "g/dL": Decimal(1),
    "g/L": Decimal("0.1"),
    "mmol/L": Decimal("1.611"),
}
UNITS_BY_TEST: dict[str, dict[str, Decimal]] = {
    "platelets": PLATELET_FACTORS,
    "hemoglobin": HEMOGLOBIN_FACTORS,
}
DECIDING_UNIT = {"platelets": "10^9/L", "hemoglobin": "g/dL"}


def to_deciding_unit(test: str, value: Decimal, unit: str) -> Decimal:
    return value * UNITS_BY_TEST[test][unit]


@dataclass(frozen=True, slots=True)
class Bounds:
    """Rejected outside [low, high]; accepted with `unusual_value` below/above the inner limits."""

    low: Decimal
    high: Decimal
    unusual_at_or_below: Decimal | None = None  # platelets: exactly 0 is unusual
    unusual_below: Decimal | None = None
    unusual_above: Decimal | None = None

    def implausible(self, value: Decimal) -> bool:
        return value < self.low or value > self.high

    def unusual(self, value: Decimal) -> bool:
        return (
            (self.unusual_at_or_below is not None and value <= self.unusual_at_or_below)
            or (self.unusual_below is not None and value < self.unusual_below)
            or (self.unusual_above is not None and value > self.unusual_above)
        )


PLAUSIBILITY: dict[str, Bounds] = {
    "platelets": Bounds(Decimal(0), Decimal(3000), unusual_at_or_below=Decimal(0), unusual_above=Decimal(1000)),
    "hemoglobin": Bounds(Decimal(2), Decimal(25), unusual_below=Decimal(4), unusual_above=Decimal(20)),
    "weight_kg": Bounds(Decimal(1), Decimal(350), unusual_below=Decimal(3)),
    "age_years": Bounds(Decimal(0), Decimal(120)),
}
