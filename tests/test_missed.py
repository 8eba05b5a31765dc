"""RULES.md section 6: each drug's missed-dose guidance, for the reminders."""

from __future__ import annotations

import datetime as dt

from core import missed_dose_guidance

DAY = dt.date(2026, 11, 22)


def test_lusutrombopag_same_day_take_it_today():
    g = missed_dose_guidance("lusutrombopag", scheduled=DAY, today=DAY)
    assert g.action == "take_today"
    assert g.give_missed_dose is True
    assert g.notify_team is False
    assert g.next_dose_not_before == dt.date(2026, 11, 23)
    assert "Never two doses in one day" in g.text


def test_lusutrombopag_past_day_is_not_made_up_and_the_team_is_told():
    g = missed_dose_guidance("lusutrombopag", scheduled=DAY, today=DAY + dt.timedelta(days=1))
    assert g.action == "skip"
    assert g.give_missed_dose is False
    assert g.notify_team is True
    assert g.next_dose_not_before == dt.date(2026, 11, 23)
    assert "not made up" in g.text


def test_hetrombopag_no_doubling_next_at_usual_time():
    g = missed_dose_guidance("hetrombopag", scheduled=DAY, today=DAY + dt.timedelta(days=1))
    assert g.action == "skip"
    assert g.give_missed_dose is False
    assert g.notify_team is True
    assert g.next_dose_not_before == dt.date(2026, 11, 23)
    assert g.source == "HemaDose ruleset v1, section 6 (no label rule)"


def test_romiplostim_contact_the_team():
    g = missed_dose_guidance("romiplostim", scheduled=DAY, today=DAY + dt.timedelta(days=1))
    assert g.action == "contact_team"
    assert g.notify_team is True
    assert g.next_dose_not_before is None
    assert "Do not double" in g.text


def test_luspatercept_as_soon_as_possible_then_21_days():
    g = missed_dose_guidance("luspatercept", scheduled=DAY, today=DAY + dt.timedelta(days=3))
    assert g.action == "give_as_soon_as_possible"
    assert g.give_missed_dose is True
    assert g.next_dose_not_before == dt.date(2026, 12, 16)
    given = missed_dose_guidance(
        "luspatercept", scheduled=DAY, today=DAY + dt.timedelta(days=5), given_on=DAY + dt.timedelta(days=4)
    )
    assert given.give_missed_dose is False
    assert given.next_dose_not_before == dt.date(2026, 12, 17)
