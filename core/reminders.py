"""Which days a saved recommendation needs reminders on, and when a dose counts as missed.

Pure dates, no clock and no time zone: the adapter puts these days at the user's local time.
The intervals are the label schedules of RULES.md (romiplostim weekly, hetrombopag daily,
lusutrombopag the 7-day course, luspatercept every 3 weeks and at least 21 days apart, section 6).
How long a reminder waits before a dose counts as missed is RULES.md section 6 (deadlines, a
product convention): a daily tablet by the evening of its day, an injection by the day after.
RULES.md 6a: a romiplostim or luspatercept dose after the one the decision set depends on a result
not yet known (the weekly count, the pre-dose haemoglobin), so its reminder asks for it first.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, NamedTuple

from core.framework import DOSE_ACTIONS
from core.models import DoseResponse, Drug
from core.registry import REGISTRY

ReminderKind = Literal["dose", "heads_up", "lab"]

ONE_DAY = dt.timedelta(days=1)
# Days from one dose to the next, from the drug profiles; lusutrombopag: its course, planned at once.
INTERVAL = {drug: rules.profile.interval_days for drug, rules in REGISTRY.items() if drug != "lusutrombopag"}
INJECTED = frozenset(drug for drug, rules in REGISTRY.items() if rules.profile.injected)
EVENING = dt.time(21, 0)  # a daily tablet not confirmed by then is missed
# RULES.md 6a: each dose is decided on a new result (romiplostim: the weekly count; luspatercept: the
# pre-dose haemoglobin). Hetrombopag and a lusutrombopag course: the decided daily dose stands.
RESULT_FIRST = frozenset({"romiplostim", "luspatercept"})


class PlannedReminder(NamedTuple):
    """One reminder of the plan: what kind, for which local day, and whether its dose is already decided."""

    kind: ReminderKind
    on: dt.date  # the local day it is for (a heads-up: the day before the dose)
    dose_on: dt.date | None = None  # the dose day a heads-up announces
    # The decision fixed this dose's amount (RULES.md 6a); False: it awaits a new result first.
    decided: bool = True


def plan(drug: Drug, response: DoseResponse, now: dt.datetime, at: dt.time) -> list[PlannedReminder]:
    """Every reminder the recommendation implies, for reminders at local time `at` set up at local
    time `now` (naive); a referral implies none.

    Dose days: the course's dates (lusutrombopag), else the next dose date; later doses are added
    one at a time as each is taken, skipped or missed (`following_dose`). A dose day whose deadline
    has already passed is not reminded; a daily drug's next day is, instead. Lab: the next
    monitoring date.

    RULES.md 6a reading: the dose the decision set for its own date is decided (the core decided
    it on a fresh result); a romiplostim or luspatercept dose on any later day is not (`decided`).
    """
    if response.action == "refer":
        return []
    today = now.date()
    planned: list[PlannedReminder] = []
    if response.action in DOSE_ACTIONS and response.next_dose_date is not None:
        days = response.schedule if drug == "lusutrombopag" and response.schedule else [response.next_dose_date]
        for day in days:
            if day < today:
                continue
            by_day, by_time = missed_after(drug, day, at)
            decided = True
            if dt.datetime.combine(by_day, by_time) <= now:
                following = following_dose(drug, day, None)
                if following is None or following in days:
                    continue
                day, decided = following, drug not in RESULT_FIRST
            if drug in INJECTED and day - ONE_DAY >= today:
                planned.append(PlannedReminder("heads_up", day - ONE_DAY, day, decided))
            planned.append(PlannedReminder("dose", day, None, decided))
    if response.next_monitoring is not None and response.next_monitoring.date >= today:
        planned.append(PlannedReminder("lab", response.next_monitoring.date))
    return sorted(planned, key=lambda p: (p.on, p.kind != "heads_up"))


def following_dose(drug: Drug, scheduled: dt.date, given_on: dt.date | None) -> dt.date | None:
    """The dose day after this one, or None when there is none to remind of.

    lusutrombopag: none (the course's days are all planned at once). luspatercept: 21 days after the
    dose was given; not given (missed, skipped): none until it is (section 6: give it as soon as
    possible, then at least 21 days). hetrombopag: the next day. romiplostim: a week on; a dose
    given late moves the week with it (RULES.md has no rule for it: never two injections closer
    than a week is the safer reading).
    """
    if drug == "lusutrombopag":
        return None
    if drug == "luspatercept":
        return given_on + dt.timedelta(days=INTERVAL[drug]) if given_on is not None else None
    if drug == "romiplostim" and given_on is not None and given_on > scheduled:
        return given_on + dt.timedelta(days=INTERVAL[drug])
    return scheduled + dt.timedelta(days=INTERVAL[drug])


def missed_after(drug: Drug, day: dt.date, at: dt.time) -> tuple[dt.date, dt.time]:
    """The local day and time by which a dose reminded on `day` at `at` must be confirmed.

    Daily tablets: the evening of the same day (21:00, or two hours after a later reminder, at most
    23:59). Injections: the day after, at the reminder's time.
    """
    if drug in INJECTED:
        return day + ONE_DAY, at
    if at < EVENING.replace(hour=EVENING.hour - 2):
        return day, EVENING
    later = dt.datetime.combine(day, at) + dt.timedelta(hours=2)
    return (day, later.time()) if later.date() == day else (day, dt.time(23, 59))
