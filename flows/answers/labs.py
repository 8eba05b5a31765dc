"""The deciding result, its date, the earlier one, and the counts since the dose (stable rule, procedure)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from core import hetrombopag, luspatercept, lusutrombopag, romiplostim
from core.framework import FRESH_DAYS, STABLE_DAYS
from core.numbers import fmt
from core.units import UNITS_BY_TEST
from flows.answers.common import Confirm, Parsed, profile_of, split_dated
from flows.parsing import (
    LAB_UNITS,
    SHOWN_UNIT,
    Problem,
    Suggestion,
    check_lab,
    is_unusual,
    parse_date,
    parse_number,
    with_unit,
)
from flows.replies import Env
from flows.state import Answers, LabAnswer


def deciding_test_of(answers: Answers) -> str:
    return profile_of(answers).deciding_test


def lab_optional(answers: Answers) -> bool:
    return answers.drug == "lusutrombopag" and answers.status == "on"


def lab_line(value_: Decimal | None, unit: str | None, day: dt.date | None) -> str:
    """A result's review line."""
    if value_ is None or unit is None:
        return "skipped"
    return f"{fmt(value_)} {SHOWN_UNIT[unit]}" + (f" on {day}" if day else "")


def lab_question(answers: Answers, env: Env) -> str:
    if deciding_test_of(answers) == "platelets":
        tail = " (optional once the course has started)" if lab_optional(answers) else ""
        return f"Latest platelet count{tail}? In ×10^9/L, e.g. 32 (or 32000/µL, 32 G/L)."
    return "Latest pre-transfusion haemoglobin? In g/dL, e.g. 8.9 (or 89 g/L, 5.5 mmol/L)."


def read_value(text: str, test: str) -> tuple[Decimal, str, bool] | Problem | Suggestion:
    """A lab value: (value, unit, unusual), a Problem, or a likely unit slip to confirm."""
    parsed = parse_number(
        text,
        what="platelet count" if test == "platelets" else "haemoglobin",
        example="32" if test == "platelets" else "8.9",
        units=LAB_UNITS[test],
    )
    if isinstance(parsed, Problem):
        return parsed
    number, unit = parsed
    checked = check_lab(test, number, unit)
    if checked is not None:
        return checked
    return number, unit, is_unusual(test, number, unit)


def read_lab(text: str, test: str, fields: tuple[str, str]) -> Parsed:
    read = read_value(text, test)
    if isinstance(read, Problem):
        return read
    value_field, unit_field = fields
    date_field = value_field.replace("_value", "_date")
    if isinstance(read, Suggestion):
        return Confirm(read.message, {value_field: read.value, unit_field: read.unit, date_field: None})
    number, unit, unusual = read
    updates: dict[str, Any] = {value_field: number, unit_field: unit, date_field: None}
    if unusual:
        return Confirm(f"{with_unit(number, unit)} is unusual. Is that right?", updates)
    return updates


def parse_lab(text: str, answers: Answers, env: Env) -> Parsed:
    if lab_optional(answers) and text.strip().lower() == "skip":
        return {"lab_value": None, "lab_unit": None, "lab_date": None, "lab_skipped": True}
    parsed = read_lab(text, deciding_test_of(answers), ("lab_value", "lab_unit"))
    # A new value needs its own date: asked next, with the old one offered as Keep.
    return parsed | {"lab_skipped": False, "lab_date": None} if isinstance(parsed, dict) else parsed


def _test_name(answers: Answers) -> str:
    return "count" if deciding_test_of(answers) == "platelets" else "haemoglobin"


def parse_lab_date(text: str, answers: Answers, env: Env) -> Parsed:
    day = parse_date(text, env.today, what="date of the result")
    if isinstance(day, Problem):
        return day
    age = (env.today - day).days
    checked = not lab_optional(answers)  # a lusutrombopag course under way has no lab check (RULES.md 0)
    if checked and age > FRESH_DAYS:
        # lab.stale: said at once, not first on the card; "No" asks for a newer result.
        return Confirm(
            f"That {_test_name(answers)} is {age} days old: the rules need one from the last {FRESH_DAYS} days, "
            "so the recommendation will be to repeat it. Use it anyway, or No to enter a newer one?",
            {"lab_date": day},
            retry="lab_value",
        )
    return {"lab_date": day}


def deciding_in_unit(answers: Answers) -> Decimal | None:
    if answers.lab_value is None or answers.lab_unit is None:
        return None
    return answers.lab_value * UNITS_BY_TEST[deciding_test_of(answers)][answers.lab_unit]


def _recorded_in(answers: Answers, first: dt.date, last: dt.date) -> bool:
    test = deciding_test_of(answers)
    return any(first <= lab.date <= last and lab.test == test for lab in answers.history_labs)


def _week_before(day: dt.date) -> tuple[dt.date, dt.date]:
    """The window of Q in the romiplostim reduce rule: 10 to 4 days before the deciding count (the core's)."""
    return romiplostim.week_before(day)


def _rise_window(day: dt.date) -> tuple[dt.date, dt.date]:
    """luspatercept.hb_rise: a haemoglobin dated in the 21 days before the latest."""
    return day - dt.timedelta(days=luspatercept.RISE_WINDOW_DAYS), day - dt.timedelta(days=1)


def previous_applies(answers: Answers, env: Env) -> bool:
    """Romiplostim: the week before, when the two-week reduce rule may apply; luspatercept: a rise."""
    if answers.status != "on" or answers.lab_date is None:
        return False
    day = answers.lab_date
    if answers.drug == "romiplostim":
        count = deciding_in_unit(answers)
        limits = romiplostim.THRESHOLDS[answers.region or "us"]
        # Only where it can decide: above the reduce threshold, not above the hold one (a hold wins).
        needed = count is not None and limits.reduce_above < count <= limits.hold_above
        return needed and not _recorded_in(answers, *_week_before(day))
    if answers.drug == "luspatercept":
        return not _recorded_in(answers, *_rise_window(day))
    if answers.drug == "lusutrombopag" and answers.region == "jp" and answers.dose_since is not None:
        # The Japanese day-5 stop compares a count from day 5 on with the one before the course.
        day_five = answers.dose_since + dt.timedelta(days=lusutrombopag.JP_STOP_DAY - 1)
        before_course = any(lab.date <= answers.dose_since for lab in answers.history_labs)
        return day >= day_five and not before_course
    return False


def previous_question(answers: Answers, env: Env) -> str:
    day = answers.lab_date
    assert day is not None
    if answers.drug == "lusutrombopag":
        return (
            f"The platelet count from before the course (on or before day 1, {answers.dose_since})? The course "
            f"stops early when a count from day {lusutrombopag.JP_STOP_DAY} on is {fmt(lusutrombopag.NOT_LOW)} or "
            f"more and at least {fmt(lusutrombopag.JP_STOP_RISE)} above it."
        )
    if answers.drug == "romiplostim":
        threshold = romiplostim.THRESHOLDS[answers.region or "us"].reduce_above
        first, last = _week_before(day)
        return (
            f"The previous week's platelet count (taken {first} to {last})? "
            f"The dose is reduced only if both are above {fmt(threshold)}."
        )
    first, last = _rise_window(day)
    # luspatercept.hb_rise reads any such value with no transfusion after it: the lowest decides.
    weeks = luspatercept.RISE_WINDOW_DAYS // 7
    return (
        f"The lowest haemoglobin from the {weeks} weeks before ({first} to {last}) with no transfusion after it, "
        f"if there is one? A rise of more than {fmt(luspatercept.RISE_ABOVE)} g/dL above it reduces the dose."
    )


def parse_previous(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() in ("skip", "none", "no", "none / skip"):
        return {"previous_value": None, "previous_unit": None, "previous_date": None, "previous_skipped": True}
    parsed = read_lab(text, deciding_test_of(answers), ("previous_value", "previous_unit"))
    return parsed | {"previous_skipped": False, "previous_date": None} if isinstance(parsed, dict) else parsed


def parse_previous_date(text: str, answers: Answers, env: Env) -> Parsed:
    assert answers.lab_date is not None
    day = parse_date(text, env.today, what="date of the earlier result")
    if isinstance(day, Problem):
        return day
    if answers.drug == "lusutrombopag" and answers.dose_since is not None and day > answers.dose_since:
        return Problem(f"The count before the course must be dated on or before day 1 ({answers.dose_since}).")
    if day >= answers.lab_date:
        return Problem(f"The earlier result must be dated before the latest one ({answers.lab_date}).")
    window = {"romiplostim": _week_before, "luspatercept": _rise_window}.get(answers.drug or "")
    if window is not None:
        first, last = window(answers.lab_date)
        if not first <= day <= last:
            gap = (answers.lab_date - day).days
            nearest, farthest = romiplostim.WEEK_BEFORE_DAYS
            rule = (
                f"the two-week rule reads only a count from {nearest} to {farthest} days before the latest"
                if answers.drug == "romiplostim"
                else f"the rise rule reads only a haemoglobin from the {luspatercept.RISE_WINDOW_DAYS} days before "
                "the latest"
            )
            return Confirm(
                f"That result is {gap} day{'s' if gap != 1 else ''} before the latest ({answers.lab_date}): "
                f"{rule} ({first} to {last}), so it will not count. Use it anyway, or No to enter another?",
                {"previous_date": day},
                retry="previous_value",
            )
    return {"previous_date": day}


# --- romiplostim and hetrombopag: every count since `since` (stable -> monthly monitoring) -----------


STABLE_RULE_DRUGS = frozenset({"romiplostim", "hetrombopag"})  # monthly monitoring once "stable"


def _stable_range(answers: Answers) -> tuple[Decimal, Decimal]:
    """The counts that show stability: romiplostim 50 to the reduce threshold; hetrombopag low to 250."""
    if answers.drug == "romiplostim":
        return romiplostim.LOW, romiplostim.THRESHOLDS[answers.region or "us"].reduce_above
    return hetrombopag.LADDERS[answers.indication or "itp"].low, hetrombopag.REDUCE_ABOVE


def _pre_procedure_from(answers: Answers) -> dt.date | None:
    """Lusutrombopag: the first day whose count the pre-procedure warning reads (RULES.md 3), or None."""
    if answers.drug != "lusutrombopag" or answers.procedure_date is None:
        return None
    return answers.procedure_date - dt.timedelta(days=lusutrombopag.PRE_PROCEDURE_DAYS)


def counts_from(answers: Answers) -> dt.date | None:
    """The first date of the counts this step collects: `since` for the stable rule, or the start of
    lusutrombopag's pre-procedure window."""
    return _pre_procedure_from(answers) if answers.drug == "lusutrombopag" else answers.dose_since


def counts_apply(answers: Answers, env: Env) -> bool:
    """Only where the counts can decide: monthly monitoring (RULES.md 1 and 2, "stable"), or
    lusutrombopag's critical `pre_procedure_platelets_low` (RULES.md 3, every count from the
    procedure date - 2).

    Stable: on treatment (not on hold), at least STABLE_DAYS at the level, and the latest count fresh,
    in the period and in the stable range (a count out of range rules monthly monitoring out, whatever
    the others say; a stale one refers). Pre-procedure: a course under way once today is in the window
    (before it, no count there can exist yet).
    """
    window = _pre_procedure_from(answers)
    if window is not None:
        return answers.status == "on" and env.today >= window
    since, day, count = answers.dose_since, answers.lab_date, deciding_in_unit(answers)
    if answers.drug not in STABLE_RULE_DRUGS or answers.status != "on" or since is None or day is None or count is None:
        return False
    if (env.today - since).days < STABLE_DAYS or day < since or (env.today - day).days > FRESH_DAYS:
        return False
    low, high = _stable_range(answers)
    return low <= count <= high


def _counts_in_period(answers: Answers, today: dt.date) -> list[tuple[dt.date, Decimal, str]]:
    """Every count the request will carry dated from the step's first date to today, oldest first."""
    first = counts_from(answers)
    assert first is not None
    entered = [
        (day, value_, unit)
        for value_, unit, day in (
            (answers.previous_value, answers.previous_unit, answers.previous_date),
            (answers.lab_value, answers.lab_unit, answers.lab_date),
        )
        if value_ is not None and unit is not None and day is not None
    ]
    known = [
        (lab.date, lab.value, lab.unit)
        for lab in [*answers.history_labs, *answers.added_labs]
        if lab.test == deciding_test_of(answers)
    ]
    seen = {(day, value_) for day, value_, _ in entered}
    every = [row for row in known if (row[0], row[1]) not in seen] + entered
    return sorted((row for row in every if first <= row[0] <= today), key=lambda row: row[0])


def _count_shown(count: Decimal, unit: str) -> str:
    return fmt(count) if unit == "10^9/L" else with_unit(count, unit)


def counts_listed(answers: Answers, today: dt.date) -> str:
    return ", ".join(f"{day} {_count_shown(value_, unit)}" for day, value_, unit in _counts_in_period(answers, today))


def counts_question(answers: Answers, env: Env) -> str:
    listed = counts_listed(answers, env.today) or "none yet"
    window = _pre_procedure_from(answers)
    if window is not None:
        return (
            f"Platelet counts from {window} ({lusutrombopag.PRE_PROCEDURE_DAYS} days before the procedure): "
            f"{listed}. Any count there below {fmt(lusutrombopag.PRE_PROCEDURE_LOW)} is a critical warning. "
            "Add any others as 'YYYY-MM-DD value' (one per message), or press Done."
        )
    low, high = _stable_range(answers)
    return (
        f"Platelet counts since {answers.dose_since} (the first dose at this level): {listed}. "
        f"Counts are checked monthly instead of weekly only when enough of them since then are all "
        f"{fmt(low)} to {fmt(high)}. Add any others as 'YYYY-MM-DD value' (one per message), or press Done."
    )


def parse_count(text: str, answers: Answers, env: Env) -> Parsed:
    if text.strip().lower() in ("done", "none", "no", "skip"):
        return {"counts_done": True}
    if text.strip().lower() in ("remove", "remove the ones added"):  # a slip is undone; the record's stay
        return {"added_labs": [], "counts_done": False, "_stay": True}
    first = counts_from(answers)
    assert first is not None
    example = f"{max(first, env.today - dt.timedelta(days=14))} 80"
    dated = split_dated(text, env.today, what="count", example=example)
    if isinstance(dated, Problem):
        return dated
    day, rest = dated
    if day < first:
        what = "the first dose at this level" if first == answers.dose_since else "the pre-procedure window"
        return Problem(
            f"{day} is before {first}, {what}; only counts from then on are read here. Send another, or press Done."
        )
    read = read_value(rest, "platelets")
    if isinstance(read, Problem):
        return read
    if isinstance(read, Suggestion):
        added = [*answers.added_labs, LabAnswer(test="platelets", value=read.value, unit=read.unit, date=day)]
        return Confirm(read.message, {"added_labs": added, "counts_done": False, "_stay": True})
    number, unit, unusual = read
    added = [*answers.added_labs, LabAnswer(test="platelets", value=number, unit=unit, date=day)]
    updates: dict[str, Any] = {"added_labs": added, "counts_done": False, "_stay": True}
    if unusual:
        return Confirm(f"{with_unit(number, unit)} is unusual. Is that right?", updates)
    return updates
