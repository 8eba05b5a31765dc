"""Units and plausibility (RULES.md section 0, "Units" and "Plausibility").

Every lab value is converted exactly (Decimal, never rounded first) to the unit rules decide in:
platelets in x10^9/L, haemoglobin in g/dL.
"""

from __future__ import annotations

from collections.abc import Callable
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


@dataclass(frozen=True, slots=True)
class Bounds:
    """Rejected outside [low, high]; accepted with `unusual_value` where `is_usual` says no."""

    low: Decimal
    high: Decimal
    is_usual: Callable[[Decimal], bool] = lambda value: True

    def implausible(self, value: Decimal) -> bool:
        """Outside [low, high]: likely a slip (wrong unit or digit), refused as `implausible_value`."""
        return value < self.low or value > self.high

    def unusual(self, value: Decimal) -> bool:
        """Accepted but flagged `unusual_value`: possible, yet worth a second look."""
        return not self.is_usual(value)


_D = Decimal
_ZERO, _FOUR, _THREE, _TWENTY, _THOUSAND = _D(0), _D(4), _D(3), _D(20), _D(1000)
PLAUSIBILITY: dict[str, Bounds] = {
    # platelets: unusual when exactly 0 or above 1000
    "platelets": Bounds(_D(0), _D(3000), is_usual=lambda v: _ZERO < v <= _THOUSAND),
    # haemoglobin: unusual below 4 or above 20
    "hemoglobin": Bounds(_D(2), _D(25), is_usual=lambda v: _FOUR <= v <= _TWENTY),
    # weight: unusual below 3 kg
    "weight_kg": Bounds(_D(1), _D(350), is_usual=lambda v: v >= _THREE),
    "age_years": Bounds(_D(0), _D(120)),
}


def unit_fault(test: str, unit: str) -> str | None:
    """Why `unit` does not fit `test` (listing the units that do), or None: a wrong unit would misread the value."""
    if unit in UNITS_BY_TEST[test]:
        return None
    return f"'{unit}' is not a unit for {test}; expected one of {', '.join(UNITS_BY_TEST[test])}"
