"""Reading what people type: dates, numbers with units, and the unit mix-ups worth naming.

Every parser returns either a value or a specific message saying what was wrong and how to
write it; none guesses silently.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from core.numbers import fmt
from core.units import PLAUSIBILITY, UNITS_BY_TEST

# Every pattern here is anchored and has no two unbounded repeats that can match the same characters
# one after the other, so a failed match is linear in the text (tests/test_hardening_chat.py). What
# follows a number is taken whole and stripped in Python: `\s*(.*?)\s*$` retried the lazy part at
# every space of a long message (quadratic: 100 KB took a minute).
_NUMBER = re.compile(r"([-+]?\d+(?:[.,]\d+)?)(.*)", re.DOTALL)
_DAYS_AGO = re.compile(r"^(\d{1,3})\s*(?:d|days?)\s*ago$")
_IN_DAYS = re.compile(r"^in\s+(\d{1,3})\s*(?:d|days?)$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# What people type for each unit -> the contract's unit.
PLATELET_UNITS = {
    "": "10^9/L",
    "x10^9/l": "10^9/L",
    "×10^9/l": "10^9/L",
    "x 10^9/l": "10^9/L",
    "10^9/l": "10^9/L",
    "x10e9/l": "10^9/L",
    "g/l": "G/L",
    "10^3/ul": "10^3/uL",
    "x10^3/ul": "10^3/uL",
    "k/ul": "10^3/uL",
    "/ul": "/uL",
    "/µl": "/uL",
    "per ul": "/uL",
    "per µl": "/uL",
    "/mm3": "/uL",
}
HEMOGLOBIN_UNITS = {"": "g/dL", "g/dl": "g/dL", "g/l": "g/L", "mmol/l": "mmol/L"}
LAB_UNITS = {"platelets": PLATELET_UNITS, "hemoglobin": HEMOGLOBIN_UNITS}
SHOWN_UNIT = {
    "10^9/L": "×10^9/L",
    "10^3/uL": "×10^3/µL",
    "/uL": "/µL",
    "G/L": "G/L",
    "g/dL": "g/dL",
    "g/L": "g/L",
    "mmol/L": "mmol/L",
}


def with_unit(value: Decimal, unit: str) -> str:
    """'52 ×10^9/L', but '52000/µL' (no space before a per-unit)."""
    shown = SHOWN_UNIT.get(unit, unit)
    return f"{fmt(value)}{'' if shown.startswith('/') else ' '}{shown}"


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an answer was not taken, in words for the user."""

    message: str


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A value that is probably a slip: ask before using `value` (in `unit`) instead."""

    message: str
    value: Decimal
    unit: str


def parse_date(
    text: str,
    today: dt.date,
    *,
    what: str,
    future: bool = False,
    past: bool = True,
    not_before: dt.date | None = None,
) -> dt.date | Problem:
    """Today, yesterday, 'N days ago', 'in N days' or YYYY-MM-DD."""
    cleaned = text.strip().lower()
    value: dt.date | None = None
    if cleaned == "today":
        value = today
    elif cleaned == "yesterday":
        value = today - dt.timedelta(days=1)
    elif cleaned == "tomorrow":
        value = today + dt.timedelta(days=1)
    elif match := _DAYS_AGO.match(cleaned):
        value = today - dt.timedelta(days=int(match.group(1)))
    elif match := _IN_DAYS.match(cleaned):
        value = today + dt.timedelta(days=int(match.group(1)))
    elif _ISO.match(cleaned):
        try:
            value = dt.date.fromisoformat(cleaned)
        except ValueError:
            return Problem(f"{text.strip()} is not a real date. Write it as YYYY-MM-DD, e.g. {today}.")
    else:
        hint = " (day and month could be read either way)" if "/" in cleaned else ""
        return Problem(
            f"I could not read '{text.strip()}' as a date{hint}. Write it as YYYY-MM-DD, e.g. {today}, "
            "or press Today / Yesterday."
        )
    if value > today and not future:
        return Problem(f"{value} is in the future; the {what} must be today or earlier.")
    if value < today and not past:
        return Problem(f"{value} has passed; the {what} must be today or later.")
    if not_before is not None and value < not_before:
        return Problem(f"{value} is before {not_before}; the {what} cannot be earlier than that.")
    return value


_THOUSANDS = re.compile(r"(?<=\d)[ \u00a0\u202f](?=\d{3}(?!\d))")
_LOOKS_LIKE_DATE = re.compile(r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./]\d{1,2}[./]\d{2,4})\s*$")
_DATE_PART = re.compile(r"^[-/.]?\d{1,2}[-/.]\d{1,2}\b|^\d{4}-\d{1,2}-\d{1,2}\b")
LARGEST = Decimal(10) ** 7  # no answer here is that large; longer numbers are refused, not computed


def parse_number(
    text: str, *, what: str, example: str, units: dict[str, str] | None = None
) -> tuple[Decimal, str] | Problem:
    """A number with an optional unit from `units` (aliases -> contract unit); '8,9' reads as 8.9."""
    if _LOOKS_LIKE_DATE.match(text):
        return Problem(f"'{text.strip()}' looks like a date; this question asks for the {what}, e.g. {example}.")
    text = _THOUSANDS.sub("", text)  # '52 000' is 52000
    match = _NUMBER.match(text.strip())
    if not match:
        return Problem(f"I could not read '{text.strip()}' as the {what}. Type a number, e.g. {example}.")
    try:
        value = Decimal(match.group(1).replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return Problem(f"I could not read '{text.strip()}' as a number.")
    if abs(value) >= LARGEST:
        return Problem(f"{match.group(1)} is far too large for the {what}. Type it again, e.g. {example}.")
    after = match.group(2).strip()
    written = after.lower().replace(" ", "")
    if units is None:
        if written:
            return Problem(f"Type the {what} as a number only, without '{after}'.")
        return value, ""
    key = written if written in units else after.lower()
    if key not in units and _DATE_PART.match(after):
        # '2026 -11-08 1' typed where one number is asked: not a unit, a date and a number
        return Problem(
            f"'{text.strip()}' looks like a date and a number; this question asks only for the {what}, e.g. {example}."
        )
    if key not in units:
        known = ", ".join(sorted({SHOWN_UNIT.get(u, u) for u in units.values()}))
        return Problem(f"I don't know the unit '{after}' for the {what}. Use one of: {known}.")
    return value, units[key]


def check_lab(test: str, value: Decimal, unit: str) -> Problem | Suggestion | None:
    """Bounds of RULES.md section 0 with the likely unit mix-up named; None when plausible."""
    bounds = PLAUSIBILITY[test]
    factors = UNITS_BY_TEST[test]
    converted = value * factors[unit]
    if not bounds.implausible(converted):
        return None
    shown = with_unit(value, unit)
    if test == "platelets" and converted > bounds.high and unit != "/uL":
        per_ul = value / 1000
        if not bounds.implausible(per_ul):
            return Suggestion(f"{fmt(value)} looks like a count per µL: {fmt(per_ul)} ×10^9/L?", per_ul, "10^9/L")
    if test == "hemoglobin":
        for other, factor in factors.items():
            candidate = value * factor
            if other != unit and not bounds.implausible(candidate) and not bounds.unusual(candidate):
                return Suggestion(
                    f"{shown} is outside what is possible; it looks like {SHOWN_UNIT[other]}: {fmt(candidate)} g/dL?",
                    candidate,
                    "g/dL",
                )
    name = "platelet count" if test == "platelets" else "haemoglobin"
    low, high = fmt(bounds.low), fmt(bounds.high)
    deciding = "×10^9/L" if test == "platelets" else "g/dL"
    return Problem(f"A {name} of {shown} is not possible (must be {low} to {high} {deciding}).")


def is_unusual(test: str, value: Decimal, unit: str) -> bool:
    return PLAUSIBILITY[test].unusual(value * UNITS_BY_TEST[test][unit])
