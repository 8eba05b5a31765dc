"""Missed doses (RULES.md section 6): each drug's own rule, for the reminders. Not part of `recommend`.

Section 6 is one table, drug by drug; `SECTION_6` is that table as data and `missed_dose_guidance`
reads it. Only what depends on the day (the same day or later, day 7 of a lusutrombopag course,
the day a late dose was given) is worked out below. Doubling up is never advised.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from core import luspatercept, lusutrombopag, romiplostim
from core.models import Drug

MissedAction = Literal["take_today", "skip", "give_as_soon_as_possible", "contact_team"]

SOURCE = "HemaDose ruleset v1.1, section 6"
ONE_DAY = dt.timedelta(days=1)
# Given late, the next dose counts from the day it is given: one interval of the drug's profile
# (romiplostim: never two injections less than a week apart; luspatercept: at least 21 days).
_ROMIPLOSTIM_DAYS = romiplostim.PROFILE.interval_days
_LUSPATERCEPT_DAYS = luspatercept.PROFILE.interval_days


class _Row(NamedTuple):
    """One row of the section 6 table."""

    source: str  # what section 6 rests on, in brackets after the section
    action: MissedAction  # what the guidance asks, the day after (lusutrombopag: the same day)
    give_missed_dose: bool  # the missed dose itself is still to be given
    notify_team: bool
    text: str  # the table's guidance, as the reminder says it
    next_after_given: int | None  # days from the day a late dose is given to the next dose


SECTION_6: dict[Drug, _Row] = {
    "lusutrombopag": _Row(
        "Mulpleta US PI 2.1",
        "take_today",
        True,
        False,
        "Take it as soon as possible today, then the usual schedule tomorrow. Never two doses in one day.",
        None,
    ),
    "hetrombopag": _Row(
        "no label rule",
        "skip",
        False,
        True,
        "Do not take two doses to make up. Take the next dose at the usual time, on an empty stomach, "
        "and tell the treating team.",
        None,
    ),
    "romiplostim": _Row(
        "no label rule",
        "contact_team",
        True,
        True,
        "Do not double the next one; contact the treating team to give it as soon as possible. "
        f"Given late, the next injection is {_ROMIPLOSTIM_DAYS} days after the day it is given.",
        _ROMIPLOSTIM_DAYS,  # section 6, romiplostim given late: never two injections less than a week apart
    ),
    "luspatercept": _Row(
        "Reblozyl US PI 2.3, missed dose",
        "give_as_soon_as_possible",
        True,
        False,
        f"Give it as soon as possible, then keep at least {_LUSPATERCEPT_DAYS} days to the next dose; "
        "later dates move accordingly.",
        _LUSPATERCEPT_DAYS,
    ),
}

# Lusutrombopag, a day that has passed, and the last day of its course (section 6's own exceptions).
_PASSED_DAY = (
    "The dose of {day} is not made up: the course is one day shorter. Take today's dose as usual "
    "(never two in one day) and tell the treating team before the procedure."
)
_PASSED_LAST_DAY = (
    "The dose of {day} is not made up: it was the course's last day, so the course has ended one day "
    "short. Tell the treating team before the procedure."
)
_LAST_DAY = (
    f"Take it as soon as possible today; it is the course's last day (day {lusutrombopag.COURSE_DAYS}), so the "
    "course then ends. Never two doses in one day."
)


class MissedDoseGuidance(BaseModel):
    """What to do about one missed dose. Doubling up is never advised."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drug: Drug
    rule: str
    source: str
    action: MissedAction
    give_missed_dose: bool  # the missed dose itself is still to be given
    notify_team: bool
    # The earliest date for the dose after the missed one (luspatercept: 21 days after it is given).
    next_dose_not_before: dt.date | None
    text: str


def missed_dose_guidance(
    drug: Drug,
    scheduled: dt.date,
    today: dt.date,
    given_on: dt.date | None = None,
    last_of_course: bool = False,
) -> MissedDoseGuidance:
    """Guidance for a dose scheduled on `scheduled` and not taken; `given_on` when given late;
    `last_of_course` when it was the last dose of a lusutrombopag course (day 7)."""
    row = SECTION_6[drug]
    action, give, notify, text = row.action, row.give_missed_dose, row.notify_team, row.text
    next_not_before: dt.date | None = None
    if drug == "lusutrombopag":
        if today == scheduled:
            text = _LAST_DAY if last_of_course else text
            next_not_before = None if last_of_course else today + ONE_DAY
        else:  # a day that has passed is not made up
            action, give, notify = "skip", False, True
            text = (_PASSED_LAST_DAY if last_of_course else _PASSED_DAY).format(day=scheduled)
            next_not_before = None if last_of_course else today
    elif drug == "hetrombopag":
        next_not_before = scheduled + ONE_DAY
    elif row.next_after_given is not None:  # romiplostim, luspatercept: counted from the day given
        interval = dt.timedelta(days=row.next_after_given)
        if given_on is not None:
            give, next_not_before = False, given_on + interval
        elif drug == "luspatercept":
            next_not_before = today + interval
            text = f"{text} Given today, the next dose is not before {next_not_before}."
    return MissedDoseGuidance(
        drug=drug,
        rule=f"missed.{drug}",
        source=f"{SOURCE} ({row.source})",
        action=action,
        give_missed_dose=give,
        notify_team=notify,
        next_dose_not_before=next_not_before,
        text=text,
    )
