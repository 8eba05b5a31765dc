"""Decimal helpers: half-up rounding (RULES.md section 0) and number rendering."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

TENTH = Decimal("0.1")
HUNDREDTH = Decimal("0.01")


def round_half_up(value: Decimal, step: Decimal) -> Decimal:
    """Rounded to `step`, halves up (RULES.md section 0): not Python's default banker's rounding."""
    return value.quantize(step, rounding=ROUND_HALF_UP)


def json_number(value: Decimal) -> int | float:
    """288 stays 288 and 93.1 stays 93.1: the shortest JSON number for a Decimal."""
    number = float(value)  # exact enough: every value here has at most a few decimals
    return int(number) if number.is_integer() else number


@lru_cache(maxsize=4096)
def fmt(value: Decimal) -> str:
    """A Decimal for people: no exponent, no trailing zeros (3.750 -> 3.75, 10.0 -> 10)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
