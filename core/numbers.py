"""Decimal helpers: half-up rounding (RULES.md section 0) and number rendering."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

TENTH = Decimal("0.1")
HUNDREDTH = Decimal("0.01")


def round_half_up(value: Decimal, step: Decimal) -> Decimal:
    return value.quantize(step, rounding=ROUND_HALF_UP)


def json_number(value: Decimal) -> int | float:
    """288 stays 288 and 93.1 stays 93.1: the shortest JSON number for a Decimal."""
    integral = value.to_integral_value()
    return int(integral) if value == integral else float(value)


def fmt(value: Decimal) -> str:
    """A Decimal for people: no exponent, no trailing zeros (3.750 -> 3.75, 10.0 -> 10)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
