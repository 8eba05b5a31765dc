"""RULES.md section 6: each drug's missed-dose guidance, for the reminders (one table, texts whole)."""

from __future__ import annotations

import datetime as dt

from core import missed_dose_guidance
from core.missed import SECTION_6

DAY = dt.date(2026, 11, 22)
NEXT = dt.date(2026, 11, 23)


def test_the_guidance_is_one_table_with_a_row_per_drug_and_section_6_sources():
    assert set(SECTION_6) == {"lusutrombopag", "hetrombopag", "romiplostim", "luspatercept"}
    sources = {drug: missed_dose_guidance(drug, DAY, NEXT).source for drug in SECTION_6}
    assert sources == {
        "lusutrombopag": "HemaDose ruleset v1.1, section 6 (Mulpleta US PI 2.1)",
        "hetrombopag": "HemaDose ruleset v1.1, section 6 (no label rule)",
        "romiplostim": "HemaDose ruleset v1.1, section 6 (no label rule)",
        "luspatercept": "HemaDose ruleset v1.1, section 6 (Reblozyl US PI 2.3, missed dose)",
    }


def test_lusutrombopag_same_day_take_it_today():
    g = missed_dose_guidance("lusutrombopag", scheduled=DAY, today=DAY)
    assert (g.action, g.give_missed_dose, g.notify_team) == ("take_today", True, False)
    assert g.next_dose_not_before == NEXT
    assert g.text == (
        "Take it as soon as possible today, then the usual schedule tomorrow. Never two doses in one day."
    )


def test_lusutrombopag_day_7_same_day_the_course_then_ends_no_usual_schedule_tomorrow():
    g = missed_dose_guidance("lusutrombopag", scheduled=DAY, today=DAY, last_of_course=True)
    assert (g.action, g.give_missed_dose) == ("take_today", True)
    assert g.next_dose_not_before is None
    assert g.text == (
        "Take it as soon as possible today; it is the course's last day (day 7), so the course then ends. "
        "Never two doses in one day."
    )
    assert "tomorrow" not in g.text


def test_lusutrombopag_past_day_is_not_made_up_and_the_team_is_told():
    g = missed_dose_guidance("lusutrombopag", scheduled=DAY, today=NEXT)
    assert (g.action, g.give_missed_dose, g.notify_team) == ("skip", False, True)
    assert g.next_dose_not_before == NEXT
    assert g.text == (
        "The dose of 2026-11-22 is not made up: the course is one day shorter. Take today's dose as usual "
        "(never two in one day) and tell the treating team before the procedure."
    )


def test_lusutrombopag_day_7_passed_the_course_has_ended():
    g = missed_dose_guidance("lusutrombopag", scheduled=DAY, today=NEXT, last_of_course=True)
    assert (g.action, g.give_missed_dose, g.notify_team) == ("skip", False, True)
    assert g.next_dose_not_before is None
    assert g.text == (
        "The dose of 2026-11-22 is not made up: it was the course's last day, so the course has ended one day "
        "short. Tell the treating team before the procedure."
    )


def test_hetrombopag_no_doubling_next_at_usual_time():
    g = missed_dose_guidance("hetrombopag", scheduled=DAY, today=NEXT)
    assert (g.action, g.give_missed_dose, g.notify_team) == ("skip", False, True)
    assert g.next_dose_not_before == NEXT
    assert g.text == (
        "Do not take two doses to make up. Take the next dose at the usual time, on an empty stomach, "
        "and tell the treating team."
    )


def test_romiplostim_contact_the_team_and_given_late_the_next_is_7_days_after_the_day_given():
    g = missed_dose_guidance("romiplostim", scheduled=DAY, today=NEXT)
    assert (g.action, g.give_missed_dose, g.notify_team) == ("contact_team", True, True)
    assert g.next_dose_not_before is None
    assert g.text == (
        "Do not double the next one; contact the treating team to give it as soon as possible. "
        "Given late, the next injection is 7 days after the day it is given."
    )
    given = missed_dose_guidance("romiplostim", scheduled=DAY, today=DAY + dt.timedelta(days=4), given_on=NEXT)
    assert given.give_missed_dose is False
    assert given.next_dose_not_before == dt.date(2026, 11, 30)


def test_luspatercept_as_soon_as_possible_then_21_days():
    g = missed_dose_guidance("luspatercept", scheduled=DAY, today=DAY + dt.timedelta(days=3))
    assert (g.action, g.give_missed_dose, g.notify_team) == ("give_as_soon_as_possible", True, False)
    assert g.next_dose_not_before == dt.date(2026, 12, 16)
    assert g.text == (
        "Give it as soon as possible, then keep at least 21 days to the next dose; later dates move accordingly. "
        "Given today, the next dose is not before 2026-12-16."
    )
    given = missed_dose_guidance(
        "luspatercept", scheduled=DAY, today=DAY + dt.timedelta(days=5), given_on=DAY + dt.timedelta(days=4)
    )
    assert given.give_missed_dose is False
    assert given.next_dose_not_before == dt.date(2026, 12, 17)
