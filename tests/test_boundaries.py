"""Boundary tests: both sides of every threshold, date window and count in RULES.md v1.1.

Every expected value below is worked out from RULES.md (not from running the core); the comment
or parameter next to it names the rule. Dates are written relative to AS_OF (2026-11-22): d(-1)
is the day before the decision, d(7) a week after it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.helpers import (
    AS_OF,
    codes,
    dose,
    hemoglobin,
    hetrombopag,
    luspatercept,
    lusutrombopag,
    platelets,
    romiplostim,
    rules,
    run,
)

_BASE = dt.date.fromisoformat(AS_OF)


def d(offset: int) -> str:
    """The date `offset` days from AS_OF."""
    return str(_BASE + dt.timedelta(days=offset))


def span(first: int, last: int) -> list[str]:
    """d(first) ... d(last), every day."""
    return [d(n) for n in range(first, last + 1)]


def outcome(r: dict[str, Any]) -> tuple[str, Any, str]:
    """(action, dose amount or None, the deciding rule)."""
    return r["action"], None if r["dose"] is None else r["dose"]["amount"], rules(r)[0]


def assert_no_dose(r: dict[str, Any]) -> None:
    assert r["dose"] is None
    assert r["total"] is None
    assert r["volume_ml"] is None
    assert r["injections"] is None
    assert r["vials"] == []
    assert r["next_dose_date"] is None
    assert r["schedule"] == []


def monitoring(r: dict[str, Any]) -> str | None:
    return None if r["next_monitoring"] is None else r["next_monitoring"]["date"]


def vials(*pairs: tuple[float, int], unit: str) -> list[dict[str, Any]]:
    return [{"size": size, "unit": unit, "count": count} for size, count in pairs]


ROMI = ["thrombosis_risk"]
HET = ["thrombosis_risk", "empty_stomach", "protocol_derived"]
HET_ITP_START = ["thrombosis_risk", "empty_stomach"]
LUSU = ["portal_vein_thrombosis", "lactation"]
LUSU_WINDOW = ["portal_vein_thrombosis", "procedure_window", "lactation"]
LUSP_MDS = ["hypertension", "thrombosis_risk", "embryo_fetal_toxicity", "label_update_pending"]
LUSP_BT = [
    "hypertension",
    "thrombosis_risk",
    "embryo_fetal_toxicity",
    "extramedullary_hematopoiesis",
    "label_update_pending",
]


# =============================================================================================
# Romiplostim (RULES.md 1). Helper default: US, 72 kg, 3 mcg/kg since 2026-11-01 (21 days),
# last given 2026-11-15 (next due 2026-11-22 = AS_OF).
# 72 kg: 1 mcg/kg = 72 mcg (0.14 mL); 2 = 144 (0.29); 3 = 216 (0.43); 4 = 288 (0.58); 10 = 720 (1.44).
# =============================================================================================

_ROMI_TOTAL = {1: (72, 0.14), 2: (144, 0.29), 3: (216, 0.43), 4: (288, 0.58)}


@pytest.mark.parametrize(
    ("value", "unit", "action", "amount", "rule"),
    [
        (49, "10^9/L", "increase", 4, "romiplostim.increase"),  # < 50
        (50, "10^9/L", "continue", 3, "romiplostim.continue"),  # 50 is not < 50
        (49999, "/uL", "increase", 4, "romiplostim.increase"),  # 49.999 x10^9/L
        (50000, "/uL", "continue", 3, "romiplostim.continue"),  # exactly 50
        (49, "G/L", "increase", 4, "romiplostim.increase"),
        (50, "10^3/uL", "continue", 3, "romiplostim.continue"),
    ],
)
def test_romiplostim_increase_below_50(value, unit, action, amount, rule):
    r = run(romiplostim(labs=[platelets(value, d(-1), unit)]))
    assert outcome(r) == (action, amount, rule)
    total, volume = _ROMI_TOTAL[amount]
    assert r["total"] == {"amount": total, "unit": "mcg"}
    assert r["volume_ml"] == volume
    assert r["next_dose_date"] == AS_OF
    assert r["schedule"] == [AS_OF]
    assert codes(r) == ROMI
    assert rules(r) == [rule]
    assert monitoring(r) == d(7)  # 21 days at the level: weekly


@pytest.mark.parametrize(
    ("region", "count", "action", "expected_codes"),
    [
        ("us", 49, "start", ["thrombosis_risk"]),
        ("us", 50, "start", ["platelets_not_low", "thrombosis_risk"]),  # "50 or more"
        ("us", 400, "start", ["platelets_not_low", "thrombosis_risk"]),  # not above 400
        ("us", 401, "refer", ["platelets_high", "thrombosis_risk"]),  # above the hold threshold
        ("eu", 49, "start", ["thrombosis_risk"]),
        ("eu", 250, "start", ["platelets_not_low", "thrombosis_risk"]),
        ("eu", 251, "refer", ["platelets_high", "thrombosis_risk"]),  # EU hold threshold 250
    ],
)
def test_romiplostim_start_thresholds(region, count, action, expected_codes):
    r = run(romiplostim(region=region, current_dose=None, labs=[platelets(count, d(-1))]))
    assert rules(r) == ["romiplostim.start"]
    assert r["action"] == action
    assert codes(r) == expected_codes
    assert monitoring(r) == d(7)  # not a lab refer: weekly
    if action == "start":
        assert r["dose"] == {"amount": 1, "unit": "mcg/kg"}
        assert r["total"] == {"amount": 72, "unit": "mcg"}
        assert r["volume_ml"] == 0.14
        assert r["vials"] == vials((125, 1), unit="mcg")
        assert r["next_dose_date"] == AS_OF
        assert r["schedule"] == [AS_OF]
    else:
        assert_no_dose(r)
        assert r["warnings"][0]["severity"] == "critical"


@pytest.mark.parametrize(
    ("region", "latest", "previous", "action", "amount", "rule"),
    [
        ("us", 201, 201, "decrease", 2, "romiplostim.reduce"),  # both > 200
        ("us", 200, 201, "continue", 3, "romiplostim.continue"),  # deciding count not > 200
        ("us", 201, 200, "continue", 3, "romiplostim.continue"),  # Q not > 200
        ("eu", 151, 151, "decrease", 2, "romiplostim.reduce"),  # both > 150
        ("eu", 150, 151, "continue", 3, "romiplostim.continue"),
        ("eu", 151, 150, "continue", 3, "romiplostim.continue"),
    ],
)
def test_romiplostim_reduce_two_consecutive_weeks(region, latest, previous, action, amount, rule):
    r = run(romiplostim(region=region, labs=[platelets(previous, d(-8)), platelets(latest, d(-1))]))
    assert outcome(r) == (action, amount, rule)
    total, volume = _ROMI_TOTAL[amount]
    assert r["total"] == {"amount": total, "unit": "mcg"}
    assert r["volume_ml"] == volume
    assert r["next_dose_date"] == AS_OF
    assert codes(r) == ROMI
    assert r["ruleset"] == f"romiplostim/{region}"
    assert monitoring(r) == d(7)


@pytest.mark.parametrize(
    ("region", "count", "action", "amount", "rule"),
    [
        ("us", 401, "hold", None, "romiplostim.hold"),
        ("us", 400, "continue", 3, "romiplostim.continue"),  # not above 400 (and no Q: no reduce)
        ("eu", 251, "hold", None, "romiplostim.hold"),
        ("eu", 250, "continue", 3, "romiplostim.continue"),
    ],
)
def test_romiplostim_hold_threshold(region, count, action, amount, rule):
    r = run(romiplostim(region=region, labs=[platelets(count, d(-1))]))
    assert outcome(r) == (action, amount, rule)
    assert monitoring(r) == d(7)
    if action == "hold":
        assert_no_dose(r)
        assert codes(r) == ["platelets_high", "thrombosis_risk"]
        assert r["warnings"][0]["severity"] == "critical"
    else:
        assert r["total"] == {"amount": 216, "unit": "mcg"}
        assert r["next_dose_date"] == AS_OF
        assert codes(r) == ROMI


@pytest.mark.parametrize(
    ("region", "count", "action", "amount", "rule"),
    [
        ("us", 199, "resume", 2, "romiplostim.resume"),  # < 200: pre-hold 3 - 1
        ("us", 200, "hold", None, "romiplostim.still_held"),
        ("eu", 149, "resume", 2, "romiplostim.resume"),  # < 150
        ("eu", 150, "hold", None, "romiplostim.still_held"),
    ],
)
def test_romiplostim_resume_threshold(region, count, action, amount, rule):
    r = run(romiplostim(region=region, on_hold=True, labs=[platelets(count, d(-1))]))
    assert outcome(r) == (action, amount, rule)
    assert codes(r) == ROMI
    assert rules(r) == [rule]
    assert monitoring(r) == d(7)
    if action == "resume":
        assert r["total"] == {"amount": 144, "unit": "mcg"}
        assert r["next_dose_date"] == AS_OF
        assert r["schedule"] == [AS_OF]
    else:
        assert_no_dose(r)


def test_romiplostim_resume_below_1_refers():
    r = run(
        romiplostim(
            on_hold=True,
            current_dose=dose(1, "mcg/kg", "2026-11-01", "2026-11-15"),
            labs=[platelets(100, d(-1))],
        )
    )
    assert outcome(r) == ("refer", None, "romiplostim.resume")
    assert_no_dose(r)
    assert codes(r) == ROMI


@pytest.mark.parametrize(
    ("labs", "action", "amount", "rule"),
    [
        # Q is the most recent count dated 4 to 10 days before the deciding count (d(-1)).
        ([platelets(250, d(-5)), platelets(250, d(-1))], "decrease", 2, "romiplostim.reduce"),  # 4 days
        ([platelets(250, d(-11)), platelets(250, d(-1))], "decrease", 2, "romiplostim.reduce"),  # 10 days
        ([platelets(250, d(-4)), platelets(250, d(-1))], "continue", 3, "romiplostim.continue"),  # 3 days
        ([platelets(250, d(-12)), platelets(250, d(-1))], "continue", 3, "romiplostim.continue"),  # 11 days
        # The most recent in the window is Q: an older high count in the window does not count.
        (
            [platelets(250, d(-11)), platelets(180, d(-5)), platelets(250, d(-1))],
            "continue",
            3,
            "romiplostim.continue",
        ),
        (
            [platelets(180, d(-11)), platelets(250, d(-5)), platelets(250, d(-1))],
            "decrease",
            2,
            "romiplostim.reduce",
        ),
        # A count 3 days before does not replace Q.
        (
            [platelets(250, d(-8)), platelets(150, d(-4)), platelets(250, d(-1))],
            "decrease",
            2,
            "romiplostim.reduce",
        ),
        # Two on Q's date: the one listed last counts.
        ([platelets(250, d(-8)), platelets(180, d(-8)), platelets(250, d(-1))], "continue", 3, "romiplostim.continue"),
        ([platelets(180, d(-8)), platelets(250, d(-8)), platelets(250, d(-1))], "decrease", 2, "romiplostim.reduce"),
    ],
)
def test_romiplostim_consecutive_week_window(labs, action, amount, rule):
    r = run(romiplostim(labs=labs))
    assert outcome(r) == (action, amount, rule)
    total, volume = _ROMI_TOTAL[amount]
    assert r["total"] == {"amount": total, "unit": "mcg"}
    assert r["volume_ml"] == volume
    assert r["next_dose_date"] == AS_OF
    assert codes(r) == ROMI
    assert monitoring(r) == d(7)


@pytest.mark.parametrize(
    ("current", "action", "amount", "rule", "expected_codes"),
    [
        # estimated doses: floor((2026-11-15 - 2026-10-25) / 7) + 1 = 4
        (
            dose(10, "mcg/kg", "2026-10-25", "2026-11-15"),
            "discontinue",
            None,
            "romiplostim.no_response",
            ["no_response", "rebound_thrombocytopenia", "thrombosis_risk"],
        ),
        # estimated doses: floor(14 / 7) + 1 = 3
        (
            dose(10, "mcg/kg", "2026-11-01", "2026-11-15"),
            "continue",
            10,
            "romiplostim.max_dose",
            ["max_dose", "thrombosis_risk"],
        ),
        # doses_at_level as given wins over the estimate
        (
            dose(10, "mcg/kg", "2026-11-01", "2026-11-15", doses_at_level=4),
            "discontinue",
            None,
            "romiplostim.no_response",
            ["no_response", "rebound_thrombocytopenia", "thrombosis_risk"],
        ),
        (
            dose(10, "mcg/kg", "2026-10-25", "2026-11-15", doses_at_level=3),
            "continue",
            10,
            "romiplostim.max_dose",
            ["max_dose", "thrombosis_risk"],
        ),
    ],
)
def test_romiplostim_no_response_needs_four_doses(current, action, amount, rule, expected_codes):
    r = run(romiplostim(current_dose=current, labs=[platelets(20, d(-1))]))
    assert outcome(r) == (action, amount, rule)
    assert codes(r) == expected_codes
    assert rules(r) == [rule]
    assert monitoring(r) == d(7)  # count 20 is not "stable": weekly
    if action == "discontinue":
        assert_no_dose(r)
    else:
        assert r["total"] == {"amount": 720, "unit": "mcg"}
        assert r["volume_ml"] == 1.44
        assert r["vials"] == vials((500, 1), (250, 1), unit="mcg")  # 750: least excess, fewest vials
        assert r["next_dose_date"] == AS_OF


@pytest.mark.parametrize(
    ("patient", "warns"),
    [
        ({"weight_kg": 30, "age_years": 6, "weight_date": d(-84)}, False),  # not more than 84 days
        ({"weight_kg": 30, "age_years": 6, "weight_date": d(-85)}, True),
        ({"weight_kg": 30, "age_years": 17}, True),  # under 18, weight_date missing
        ({"weight_kg": 30, "age_years": 17, "weight_date": d(-84)}, False),
        ({"weight_kg": 30, "age_years": 18}, False),  # not under 18
        ({"weight_kg": 30, "age_years": 18, "weight_date": d(-200)}, False),
    ],
)
def test_romiplostim_pediatric_weight(patient, warns):
    r = run(
        romiplostim(
            patient=patient,
            current_dose=dose(1, "mcg/kg", "2026-11-01", "2026-11-15"),
            labs=[platelets(60, d(-1))],
        )
    )
    assert outcome(r) == ("continue", 1, "romiplostim.continue")
    assert r["total"] == {"amount": 30, "unit": "mcg"}
    assert r["volume_ml"] == 0.06
    assert r["vials"] == vials((125, 1), unit="mcg")
    if warns:
        assert codes(r) == ["thrombosis_risk", "pediatric_weight_reassess"]
        assert rules(r) == ["romiplostim.continue", "romiplostim.pediatric_weight"]
    else:
        assert codes(r) == ROMI
        assert rules(r) == ["romiplostim.continue"]


def test_romiplostim_age_under_1_refers():
    r = run(
        romiplostim(
            patient={"weight_kg": 10, "age_years": 0.99, "weight_date": d(-1)},
            labs=[platelets(60, d(-1))],
        )
    )
    assert outcome(r) == ("refer", None, "romiplostim.age")
    assert_no_dose(r)
    assert codes(r) == ROMI
    assert rules(r) == ["romiplostim.age"]
    assert monitoring(r) == d(7)


def test_romiplostim_age_under_1_refers_before_the_lab_check():
    r = run(
        romiplostim(
            patient={"weight_kg": 10, "age_years": 0.5, "weight_date": d(-1)},
            labs=[platelets(60, d(-30))],
        )
    )
    assert outcome(r) == ("refer", None, "romiplostim.age")
    assert "stale_lab" not in codes(r)


def test_romiplostim_age_1_is_treated():
    r = run(
        romiplostim(
            patient={"weight_kg": 10, "age_years": 1, "weight_date": d(-1)},
            labs=[platelets(60, d(-1))],
        )
    )
    assert outcome(r) == ("continue", 3, "romiplostim.continue")
    assert r["total"] == {"amount": 30, "unit": "mcg"}
    assert r["volume_ml"] == 0.06
    assert codes(r) == ROMI


@pytest.mark.parametrize(
    ("weight", "total", "volume", "diluted"),
    [
        (22.9, 22.9, 0.18, True),  # 22.9 / 125 = 0.1832
        (22.94, 22.9, 0.18, True),  # total rounds to 22.9
        (22.95, 23, 0.05, False),  # total rounds half-up to 23.0; 23 / 500 = 0.046
        (23, 23, 0.05, False),
    ],
)
def test_romiplostim_dilution_below_23_mcg(weight, total, volume, diluted):
    r = run(
        romiplostim(
            patient={"weight_kg": weight},
            current_dose=dose(1, "mcg/kg", "2026-11-01", "2026-11-15"),
            labs=[platelets(60, d(-1))],
        )
    )
    assert outcome(r) == ("continue", 1, "romiplostim.continue")
    assert r["total"] == {"amount": total, "unit": "mcg"}
    assert r["volume_ml"] == volume
    assert r["injections"] == 1
    assert r["vials"] == vials((125, 1), unit="mcg")
    if diluted:
        assert codes(r) == ["thrombosis_risk", "dilution_required"]
        assert rules(r) == ["romiplostim.continue", "dose.dilution"]
    else:
        assert codes(r) == ROMI
        assert rules(r) == ["romiplostim.continue"]


def three(a: float, b: float, c: float, dates: tuple[int, int, int] = (-15, -8, -1)) -> list[dict[str, Any]]:
    """Three counts, by default two weeks, one week and a day before AS_OF (the last decides)."""
    return [platelets(value, d(day)) for value, day in zip((a, b, c), dates, strict=True)]


@pytest.mark.parametrize(
    ("region", "since", "labs", "next_check"),
    [
        # RULES.md 1, "Stable" (v1.1): continue, >= 28 days at the level, >= 3 counts from `since`
        # to `as_of`, every one between 50 and the reduce threshold.
        ("us", -28, three(100, 100, 100), d(28)),  # 28 days, 3 counts in range: monthly
        ("us", -27, three(100, 100, 100), d(7)),  # 27 days: weekly
        ("us", -28, [platelets(100, d(-1))], d(7)),  # 1 count does not show stability
        ("us", -28, [platelets(100, d(-8)), platelets(100, d(-1))], d(7)),  # 2 counts: weekly
        ("us", -28, three(50, 200, 100), d(28)),  # 50 and 200 are "between"
        ("us", -28, three(49, 100, 100), d(7)),  # one below 50: weekly
        ("us", -28, three(100, 201, 100), d(7)),  # one above 200: weekly
        ("us", -28, three(49, 100, 100, (-28, -8, -1)), d(7)),  # dated on `since`: counts
        ("us", -28, three(100, 100, 100, (-28, -8, -1)), d(28)),  # ... and counts towards the 3
        ("us", -28, three(100, 100, 100, (-14, -7, 0)), d(28)),  # dated on `as_of`: counts
        ("us", -28, [platelets(30, d(-29)), *three(100, 100, 100)], d(28)),  # before `since`: does not
        ("us", -28, three(100, 100, 100, (-29, -8, -1)), d(7)),  # ... so only 2 counts: weekly
        # Two results on one date are one count (the safer reading: fewer counts, weekly) ...
        ("us", -28, three(100, 100, 100, (-8, -1, -1)), d(7)),
        # ... and a superseded result on a date still has to be in range (RULES.md 8).
        ("us", -28, [*three(100, 100, 300), platelets(100, d(-1))], d(7)),
        ("eu", -28, three(150, 150, 150), d(28)),
        ("eu", -28, three(100, 151, 100), d(7)),  # above the EU reduce threshold
        ("eu", -28, [platelets(150, d(-8)), platelets(150, d(-1))], d(7)),  # 2 counts: weekly
    ],
)
def test_romiplostim_monthly_monitoring_when_stable(region, since, labs, next_check):
    r = run(romiplostim(region=region, current_dose=dose(3, "mcg/kg", d(since), "2026-11-15"), labs=labs))
    assert outcome(r) == ("continue", 3, "romiplostim.continue")
    assert r["next_dose_date"] == AS_OF
    assert r["next_monitoring"] == {"date": next_check, "tests": ["platelets"]}


@pytest.mark.parametrize(
    ("labs", "next_check"),
    [
        ([platelets(100, d(-8)), platelets(100, d(-1))], d(7)),  # 2 counts: weekly
        (three(100, 100, 100), d(28)),  # 3 counts, all in range: monthly
        (three(100, 30, 100), d(7)),  # 3 counts, one out of range: weekly
    ],
)
def test_romiplostim_stable_needs_three_counts(labs, next_check):
    """v1.1: one or two counts do not show stability; three in range do."""
    r = run(romiplostim(current_dose=dose(3, "mcg/kg", d(-35), d(-7)), labs=labs))
    assert outcome(r) == ("continue", 3, "romiplostim.continue")
    assert monitoring(r) == next_check


# --- Lab freshness (section 0) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "action", "amount", "rule", "expected_codes", "next_check"),
    [
        (d(-7), "increase", 4, "romiplostim.increase", ROMI, d(7)),  # as_of - 7: fresh
        (d(-8), "refer", None, "lab.stale", ["stale_lab", "thrombosis_risk"], AS_OF),
        (AS_OF, "increase", 4, "romiplostim.increase", ROMI, d(7)),
    ],
)
def test_romiplostim_lab_freshness(date, action, amount, rule, expected_codes, next_check):
    r = run(romiplostim(labs=[platelets(32, date)]))
    assert outcome(r) == (action, amount, rule)
    assert codes(r) == expected_codes
    assert monitoring(r) == next_check
    if action == "refer":
        assert_no_dose(r)


def test_romiplostim_missing_lab():
    r = run(romiplostim(labs=[hemoglobin(9, d(-1))]))  # no platelet count at all
    assert outcome(r) == ("refer", None, "lab.missing")
    assert_no_dose(r)
    assert codes(r) == ["missing_lab", "thrombosis_risk"]
    assert r["next_monitoring"] == {"date": AS_OF, "tests": ["platelets"]}


def test_lab_freshness_other_drugs():
    het = run(hetrombopag(labs=[platelets(30, d(-8))]))
    assert outcome(het) == ("refer", None, "lab.stale")
    assert codes(het) == ["stale_lab", "thrombosis_risk", "empty_stomach"]  # a lab refer: no protocol_derived
    assert monitoring(het) == AS_OF
    het_fresh = run(hetrombopag(labs=[platelets(30, d(-7))]))
    assert outcome(het_fresh) == ("increase", 5, "hetrombopag.increase")

    lusp = run(luspatercept(labs=[hemoglobin(8.9, d(-8))]))
    assert outcome(lusp) == ("refer", None, "lab.stale")
    assert codes(lusp) == [LUSP_MDS[0], "stale_lab", *LUSP_MDS[1:]]
    assert lusp["next_monitoring"] == {"date": AS_OF, "tests": ["hemoglobin"]}
    lusp_fresh = run(luspatercept(labs=[hemoglobin(8.9, d(-7))]))
    assert outcome(lusp_fresh) == ("increase", 1.33, "luspatercept.increase")

    lusu = run(lusutrombopag(labs=[platelets(38, d(-8))]))
    assert outcome(lusu) == ("refer", None, "lab.stale")
    assert codes(lusu) == ["portal_vein_thrombosis", "stale_lab", "lactation"]
    assert monitoring(lusu) == AS_OF
    lusu_fresh = run(lusutrombopag(labs=[platelets(38, d(-7))]))
    assert outcome(lusu_fresh) == ("start", 3, "lusutrombopag.start")


# --- Weekly late dose (section 0, "Next dose date") ----------------------------------------------


@pytest.mark.parametrize(
    ("last_given", "next_dose", "late"),
    [
        (d(-7), AS_OF, False),  # last_given + 7 == as_of
        (d(-8), AS_OF, True),  # due d(-1) has passed: as_of, late_dose
        (d(-6), d(1), False),  # due tomorrow
    ],
)
def test_romiplostim_late_dose(last_given, next_dose, late):
    r = run(romiplostim(current_dose=dose(3, "mcg/kg", "2026-11-01", last_given), labs=[platelets(100, d(-1))]))
    assert outcome(r) == ("continue", 3, "romiplostim.continue")
    assert r["next_dose_date"] == next_dose
    assert r["schedule"] == [next_dose]
    if late:
        assert codes(r) == ["thrombosis_risk", "late_dose"]
        assert rules(r) == ["romiplostim.continue", "dose.late"]
    else:
        assert codes(r) == ROMI
        assert rules(r) == ["romiplostim.continue"]


# =============================================================================================
# Hetrombopag (RULES.md 2). Helper default: ITP, 2.5 mg since 2026-11-01 (21 days), last given
# 2026-11-21 (next dose AS_OF).
# =============================================================================================


@pytest.mark.parametrize(
    ("indication", "current", "count", "action", "amount", "rule", "expected_codes", "next_check"),
    [
        ("itp", 2.5, 49, "increase", 5, "hetrombopag.increase", HET, d(7)),  # ITP low 50
        ("itp", 2.5, 50, "continue", 2.5, "hetrombopag.continue", HET, d(7)),
        ("itp", 3.75, 49, "increase", 5, "hetrombopag.increase", HET, d(7)),
        ("itp", 7.5, 49, "continue", 7.5, "hetrombopag.max_dose", ["max_dose", *HET], d(7)),
        ("cit", 7.5, 99, "increase", 10, "hetrombopag.increase", HET, d(7)),  # CIT low 100
        (
            "cit",
            7.5,
            100,
            "continue",
            7.5,
            "hetrombopag.continue",
            ["thrombosis_risk", "cit_target_reached", "empty_stomach", "protocol_derived"],
            d(7),
        ),
        ("cit", 15, 99, "continue", 15, "hetrombopag.max_dose", ["max_dose", *HET], d(7)),
        ("itp", 5, 250, "continue", 5, "hetrombopag.continue", HET, d(7)),  # not > 250
        ("itp", 5, 251, "decrease", 2.5, "hetrombopag.reduce", HET, d(7)),
        ("itp", 2.5, 251, "refer", None, "hetrombopag.reduce", HET, d(7)),  # no lower level
        ("cit", 7.5, 251, "decrease", 5, "hetrombopag.reduce", HET, d(7)),
        ("itp", 7.5, 400, "decrease", 5, "hetrombopag.reduce", HET, d(7)),  # not > 400
        ("itp", 7.5, 401, "hold", None, "hetrombopag.hold", ["platelets_high", *HET], d(3)),  # twice weekly
        ("cit", 7.5, 401, "hold", None, "hetrombopag.hold", ["platelets_high", *HET], d(3)),
    ],
)
def test_hetrombopag_count_thresholds(indication, current, count, action, amount, rule, expected_codes, next_check):
    r = run(
        hetrombopag(
            indication,
            current_dose=dose(current, "mg", d(-21), d(-1)),
            labs=[platelets(count, d(-1))],
        )
    )
    assert outcome(r) == (action, amount, rule)
    assert codes(r) == expected_codes
    assert rules(r) == [rule]
    assert monitoring(r) == next_check
    if amount is None:
        assert_no_dose(r)
    else:
        assert r["total"] == {"amount": amount, "unit": "mg"}
        assert r["volume_ml"] is None
        assert r["vials"] == []
        assert r["next_dose_date"] == AS_OF
        assert r["schedule"] == [AS_OF]


@pytest.mark.parametrize(
    ("since", "count", "action", "amount", "rule"),
    [
        (-13, 30, "continue", 5, "hetrombopag.wait"),  # < 14 days and low
        (-14, 30, "increase", 7.5, "hetrombopag.increase"),
        (-13, 300, "continue", 5, "hetrombopag.wait"),  # < 14 days and > 250
        (-14, 300, "decrease", 2.5, "hetrombopag.reduce"),
        (-13, 50, "continue", 5, "hetrombopag.continue"),  # in range: not a wait
        (-13, 250, "continue", 5, "hetrombopag.continue"),
        (-13, 401, "hold", None, "hetrombopag.hold"),  # hold comes before wait
    ],
)
def test_hetrombopag_two_week_wait(since, count, action, amount, rule):
    r = run(hetrombopag(current_dose=dose(5, "mg", d(since), d(-1)), labs=[platelets(count, d(-1))]))
    assert outcome(r) == (action, amount, rule)
    assert rules(r) == [rule]
    if amount is not None:
        assert r["total"] == {"amount": amount, "unit": "mg"}
        assert r["next_dose_date"] == AS_OF
        assert monitoring(r) == d(7)
    else:
        assert_no_dose(r)
        assert monitoring(r) == d(3)


@pytest.mark.parametrize(
    ("indication", "current", "since", "labs", "next_check"),
    [
        # RULES.md 2, monitoring (v1.1): continue, >= 28 days, >= 3 counts from `since` to `as_of`,
        # every one between the low threshold and 250.
        ("itp", 5, -28, three(100, 100, 100), d(28)),
        ("itp", 5, -27, three(100, 100, 100), d(7)),
        ("itp", 5, -28, [platelets(100, d(-1))], d(7)),  # 1 count: weekly
        ("itp", 5, -28, [platelets(100, d(-8)), platelets(100, d(-1))], d(7)),  # 2 counts: weekly
        ("itp", 5, -28, three(50, 250, 100), d(28)),  # both ends included
        ("itp", 5, -28, three(49, 100, 100), d(7)),
        ("itp", 5, -28, three(100, 251, 100), d(7)),
        ("itp", 5, -28, [platelets(20, d(-29)), *three(100, 100, 100)], d(28)),  # before `since`
        ("itp", 5, -28, three(100, 100, 100, (-29, -8, -1)), d(7)),  # only 2 from `since`
        ("itp", 5, -28, three(100, 100, 100, (-8, -8, -1)), d(7)),  # 2 dates: 2 counts
        ("cit", 7.5, -28, three(100, 100, 100), d(28)),
        ("cit", 7.5, -28, three(100, 99, 100), d(7)),  # CIT low threshold 100
        ("cit", 7.5, -28, [platelets(100, d(-8)), platelets(100, d(-1))], d(7)),
        ("cit", 7.5, -27, three(100, 100, 100), d(7)),
    ],
)
def test_hetrombopag_monthly_monitoring(indication, current, since, labs, next_check):
    r = run(hetrombopag(indication, current_dose=dose(current, "mg", d(since), d(-1)), labs=labs))
    assert outcome(r) == ("continue", current, "hetrombopag.continue")
    assert r["next_dose_date"] == AS_OF
    assert r["next_monitoring"] == {"date": next_check, "tests": ["platelets"]}


@pytest.mark.parametrize(
    ("labs", "next_check"),
    [
        ([platelets(120, d(-8)), platelets(120, d(-1))], d(7)),  # 2 counts: weekly
        (three(120, 120, 120), d(28)),  # 3 counts, all in range: monthly
        (three(120, 260, 120), d(7)),  # 3 counts, one above 250: weekly
    ],
)
def test_hetrombopag_stable_needs_three_counts(labs, next_check):
    """v1.1: one or two counts do not show stability; three in range do."""
    r = run(hetrombopag("itp", current_dose=dose(5, "mg", d(-40), d(-1)), labs=labs))
    assert outcome(r) == ("continue", 5, "hetrombopag.continue")
    assert monitoring(r) == next_check


@pytest.mark.parametrize(
    ("current", "count", "action", "amount", "rule", "next_check"),
    [
        (7.5, 149, "resume", 5, "hetrombopag.resume", d(7)),  # < 150: pre-hold - 2.5
        (7.5, 150, "hold", None, "hetrombopag.still_held", d(3)),
        (5, 149, "resume", 2.5, "hetrombopag.resume", d(7)),
        (3.75, 100, "refer", None, "hetrombopag.resume", d(7)),  # 1.25 mg is not a level
        (2.5, 100, "refer", None, "hetrombopag.resume", d(7)),  # below 2.5 mg
    ],
)
def test_hetrombopag_resume_threshold(current, count, action, amount, rule, next_check):
    r = run(
        hetrombopag(
            on_hold=True,
            current_dose=dose(current, "mg", "2026-10-01", d(-10)),
            labs=[platelets(count, d(-1))],
        )
    )
    assert outcome(r) == (action, amount, rule)
    assert codes(r) == HET  # after a hold: no missed_doses
    assert rules(r) == [rule]
    assert monitoring(r) == next_check
    if amount is None:
        assert_no_dose(r)
    else:
        assert r["next_dose_date"] == AS_OF
        assert r["schedule"] == [AS_OF]


@pytest.mark.parametrize(
    ("indication", "count", "action", "amount", "expected_codes"),
    [
        ("itp", 400, "start", 2.5, HET_ITP_START),  # an ITP start: no protocol_derived
        ("itp", 401, "refer", None, ["platelets_high", *HET]),
        ("cit", 400, "start", 7.5, HET),
        ("cit", 401, "refer", None, ["platelets_high", *HET]),
    ],
)
def test_hetrombopag_start_refers_above_400(indication, count, action, amount, expected_codes):
    r = run(hetrombopag(indication, current_dose=None, labs=[platelets(count, d(-1))]))
    assert outcome(r) == (action, amount, "hetrombopag.start")
    assert codes(r) == expected_codes
    assert monitoring(r) == d(7)
    if amount is None:
        assert_no_dose(r)
    else:
        assert r["next_dose_date"] == AS_OF


@pytest.mark.parametrize(
    ("last_given", "next_dose", "missed"),
    [
        (d(-1), AS_OF, False),
        (d(-2), AS_OF, True),  # before as_of - 1
        (AS_OF, d(1), False),  # today's dose given
    ],
)
def test_hetrombopag_missed_doses(last_given, next_dose, missed):
    r = run(hetrombopag(current_dose=dose(2.5, "mg", d(-21), last_given), labs=[platelets(100, d(-1))]))
    assert outcome(r) == ("continue", 2.5, "hetrombopag.continue")
    assert r["next_dose_date"] == next_dose
    assert r["schedule"] == [next_dose]
    if missed:
        assert codes(r) == ["thrombosis_risk", "empty_stomach", "missed_doses", "protocol_derived"]
        assert rules(r) == ["hetrombopag.continue", "dose.missed"]
    else:
        assert codes(r) == HET
        assert rules(r) == ["hetrombopag.continue"]


# --- Sources name documents, not files (issue 9) ------------------------------------------------

_GUIDE = "hetrombopag dose-modification guide, protocol-derived"


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (hetrombopag("itp", current_dose=dose(2.5, "mg", d(-21), d(-1))), _GUIDE),  # increase
        (
            hetrombopag("cit", current_dose=None, labs=[platelets(60, d(-1))]),
            f"NMPA label (Hengqu) (ITP start 2.5 mg); {_GUIDE} (CIT start 7.5 mg)",
        ),
        (
            hetrombopag("itp", current_dose=dose(7.5, "mg", d(-30), d(-1))),
            f"NMPA label (Hengqu) (ITP maximum 7.5 mg); {_GUIDE}",
        ),
        (hetrombopag("itp", labs=[platelets(30, d(-8))]), "HemaDose ruleset v1.1, section 0 (conventions)"),
    ],
)
def test_hetrombopag_sources_name_the_guide(request_, expected):
    r = run(request_)
    assert r["rationale"][0]["source"] == expected
    assert r["ruleset"] == "hetrombopag/cn"  # the contract's DRUG/REGION, not the rules' version


# =============================================================================================
# Lusutrombopag (RULES.md 3). Helper default: US, procedure 2026-12-05, P 38 on 2026-11-21.
# =============================================================================================


@pytest.mark.parametrize(
    ("region", "procedure", "first"),
    [
        ("us", 8, 0),  # as_of = procedure - 8: start today
        ("us", 14, 0),  # as_of = procedure - 14: start today
        ("us", 15, 1),  # start on procedure - 14
        ("jp", 8, 0),
        ("jp", 13, 0),
        ("jp", 14, 1),  # JP window opens at procedure - 13
    ],
)
def test_lusutrombopag_start_window(region, procedure, first):
    r = run(lusutrombopag(region=region, procedure_date=d(procedure)))
    assert outcome(r) == ("start", 3, "lusutrombopag.start")
    assert r["total"] == {"amount": 3, "unit": "mg"}
    assert r["next_dose_date"] == d(first)
    assert r["schedule"] == span(first, first + 6)
    assert codes(r) == LUSU  # procedure 2 to 8 days after day 7: no procedure_window
    assert rules(r) == ["lusutrombopag.start"]
    # US: procedure - 2. JP: day 5 of the planned course (day 1 + 4).
    assert monitoring(r) == (d(procedure - 2) if region == "us" else d(first + 4))


@pytest.mark.parametrize("region", ["us", "jp"])
def test_lusutrombopag_too_late(region):
    r = run(lusutrombopag(region=region, procedure_date=d(7)))  # as_of = procedure - 7
    assert outcome(r) == ("refer", None, "lusutrombopag.too_late")
    assert_no_dose(r)
    assert codes(r) == LUSU_WINDOW
    assert rules(r) == ["lusutrombopag.too_late"]
    assert monitoring(r) == d(5)  # procedure - 2 (a refer before any start: as for the US)


@pytest.mark.parametrize(
    ("region", "value", "unit", "action", "rule"),
    [
        ("us", 49, "10^9/L", "start", "lusutrombopag.start"),
        ("us", 50, "10^9/L", "refer", "lusutrombopag.not_low"),  # >= 50
        ("us", 49999, "/uL", "start", "lusutrombopag.start"),
        ("us", 50000, "/uL", "refer", "lusutrombopag.not_low"),
        ("jp", 50, "10^9/L", "refer", "lusutrombopag.not_low"),
    ],
)
def test_lusutrombopag_not_low(region, value, unit, action, rule):
    r = run(lusutrombopag(region=region, labs=[platelets(value, d(-1), unit)]))
    assert rules(r) == [rule]
    if action == "start":
        assert outcome(r) == ("start", 3, rule)
        assert r["schedule"] == span(0, 6)
        assert codes(r) == LUSU
    else:
        assert outcome(r) == ("refer", None, rule)
        assert_no_dose(r)
        assert codes(r) == ["platelets_not_low", "portal_vein_thrombosis", "lactation"]
        assert monitoring(r) == d(11)  # procedure 2026-12-05 - 2


@pytest.mark.parametrize(
    ("gap", "warns"),
    [(1, True), (2, False), (8, False), (9, True)],
)
def test_lusutrombopag_procedure_window_once_started(gap, warns):
    # Started d(-2): day 3 today, day 7 is d(4); the procedure is `gap` days after day 7.
    r = run(lusutrombopag(procedure_date=d(4 + gap), current_dose=dose(3, "mg", d(-2), d(-1))))
    assert outcome(r) == ("continue", 3, "lusutrombopag.continue")
    assert r["next_dose_date"] == AS_OF
    assert r["schedule"] == span(0, 4)
    assert monitoring(r) == d(2 + gap)  # procedure - 2
    if warns:
        assert codes(r) == LUSU_WINDOW
        assert rules(r) == ["lusutrombopag.continue", "lusutrombopag.window"]
    else:
        assert codes(r) == LUSU
        assert rules(r) == ["lusutrombopag.continue"]


@pytest.mark.parametrize(
    ("since", "procedure", "labs", "warns"),
    [
        # day 8 (complete); procedure d(2), 3 days after day 7; window d(0)..d(2)
        (-7, 2, [platelets(49, d(0))], True),  # procedure - 2, below 50
        (-7, 2, [platelets(50, d(0))], False),
        (-7, 2, [platelets(49, d(-1))], False),  # procedure - 3: outside
        # day 9 (complete); procedure today, 2 days after day 7
        (-8, 0, [platelets(49, d(0))], True),  # on the procedure date
        (-8, 0, [platelets(49, d(-2))], True),  # procedure - 2
        (-8, 0, [platelets(49, d(-3))], False),
    ],
)
def test_lusutrombopag_pre_procedure_platelets_low(since, procedure, labs, warns):
    r = run(lusutrombopag(procedure_date=d(procedure), current_dose=dose(3, "mg", d(since), d(-1)), labs=labs))
    assert outcome(r) == ("complete", None, "lusutrombopag.complete")
    assert_no_dose(r)
    assert monitoring(r) == max(d(procedure - 2), AS_OF)
    if warns:
        assert codes(r) == ["pre_procedure_platelets_low", *LUSU]
        assert r["warnings"][0]["severity"] == "critical"
        assert rules(r) == ["lusutrombopag.complete", "lusutrombopag.pre_procedure"]
    else:
        assert codes(r) == LUSU
        assert rules(r) == ["lusutrombopag.complete"]


def test_lusutrombopag_pre_procedure_warning_is_added_to_a_refer():
    r = run(lusutrombopag(procedure_date=d(1), labs=[platelets(30, d(-1))]))
    assert outcome(r) == ("refer", None, "lusutrombopag.too_late")
    assert codes(r) == ["pre_procedure_platelets_low", "portal_vein_thrombosis", "procedure_window", "lactation"]
    assert rules(r) == ["lusutrombopag.too_late", "lusutrombopag.pre_procedure"]


@pytest.mark.parametrize(
    ("since", "labs", "action", "rule", "schedule", "next_check"),
    [
        # day 5; baseline 30 (day 0); count 50 on day 5: rise exactly 20 and count exactly 50
        (-4, [platelets(30, d(-5)), platelets(50, d(0))], "discontinue", "lusutrombopag.jp_stop", [], d(5)),
        # baseline dated on day 1 itself
        (-4, [platelets(30, d(-4)), platelets(50, d(0))], "discontinue", "lusutrombopag.jp_stop", [], d(5)),
        (-4, [platelets(31, d(-5)), platelets(50, d(0))], "continue", "lusutrombopag.continue", span(0, 2), d(5)),
        (-4, [platelets(29, d(-5)), platelets(49, d(0))], "continue", "lusutrombopag.continue", span(0, 2), d(5)),
        # day 4: too early, even with the target reached; monitoring on day 5
        (-3, [platelets(30, d(-5)), platelets(50, d(0))], "continue", "lusutrombopag.continue", span(0, 3), d(1)),
        # day 5 with no count yet on day 5: monitoring today
        (-4, [platelets(30, d(-5))], "continue", "lusutrombopag.continue", span(0, 2), d(0)),
        # a count on day 4 is not "on or after day 5"
        (-4, [platelets(30, d(-5)), platelets(60, d(-1))], "continue", "lusutrombopag.continue", span(0, 2), d(0)),
        # no baseline (no count on or before day 1)
        (-4, [platelets(60, d(0))], "continue", "lusutrombopag.continue", span(0, 2), d(5)),
    ],
)
def test_lusutrombopag_jp_day5_stop(since, labs, action, rule, schedule, next_check):
    # procedure d(7): day 7 is d(since + 6), 4 or 5 days before it
    r = run(lusutrombopag(region="jp", procedure_date=d(7), current_dose=dose(3, "mg", d(since), d(-1)), labs=labs))
    assert r["action"] == action
    assert rules(r) == [rule]
    assert r["schedule"] == schedule
    assert monitoring(r) == next_check
    assert codes(r) == LUSU
    if action == "discontinue":
        assert_no_dose(r)
    else:
        assert r["dose"] == {"amount": 3, "unit": "mg"}
        assert r["next_dose_date"] == AS_OF


def test_lusutrombopag_us_has_no_day5_stop():
    r = run(
        lusutrombopag(
            region="us",
            procedure_date=d(7),
            current_dose=dose(3, "mg", d(-4), d(-1)),
            labs=[platelets(30, d(-5)), platelets(50, d(0))],
        )
    )
    assert outcome(r) == ("continue", 3, "lusutrombopag.continue")
    assert monitoring(r) == d(5)


@pytest.mark.parametrize(
    ("since", "last_given", "doses", "action", "schedule"),
    [
        (-7, d(-1), None, "complete", []),  # day 8
        (-6, d(-1), None, "continue", [AS_OF]),  # day 7, today's dose not yet given
        (-6, AS_OF, None, "complete", []),  # day 7, today's dose given
        (-6, d(-1), 7, "complete", []),  # 7 doses given
        (-6, d(-1), 6, "continue", [AS_OF]),
        (-5, d(-1), None, "continue", [AS_OF, d(1)]),  # day 6
    ],
)
def test_lusutrombopag_complete(since, last_given, doses, action, schedule):
    extra = {} if doses is None else {"doses_at_level": doses}
    r = run(lusutrombopag(procedure_date=d(4), current_dose=dose(3, "mg", d(since), last_given, **extra)))
    assert r["action"] == action
    assert rules(r) == [f"lusutrombopag.{action}"]
    assert r["schedule"] == schedule
    assert monitoring(r) == d(2)  # US: procedure - 2
    assert codes(r) == LUSU
    if action == "complete":
        assert_no_dose(r)
    else:
        assert r["dose"] == {"amount": 3, "unit": "mg"}
        assert r["next_dose_date"] == AS_OF


def test_lusutrombopag_course_missed_doses():
    r = run(lusutrombopag(procedure_date=d(6), current_dose=dose(3, "mg", d(-3), d(-2))))
    assert outcome(r) == ("continue", 3, "lusutrombopag.continue")
    assert r["next_dose_date"] == AS_OF
    assert r["schedule"] == span(0, 3)  # day 7 is d(3): a missed day is not made up
    assert codes(r) == ["portal_vein_thrombosis", "lactation", "missed_doses"]
    assert rules(r) == ["lusutrombopag.continue", "dose.missed"]
    assert monitoring(r) == d(4)


# --- Child-Pugh C (RULES.md 3, `lusutrombopag.child_pugh_c`; v1.1 during a course) -------------

LUSU_CPC = ["portal_vein_thrombosis", "severe_hepatic_impairment", "lactation"]


def cpc(region: str, **overrides: Any) -> dict[str, Any]:
    return lusutrombopag(region=region, patient={"child_pugh": "C"}, **overrides)


def test_lusutrombopag_child_pugh_c_jp_refers_before_a_start():
    r = run(cpc("jp"))  # procedure 2026-12-05, count 38: would start otherwise
    assert outcome(r) == ("refer", None, "lusutrombopag.child_pugh_c")
    assert rules(r) == ["lusutrombopag.child_pugh_c"]
    assert codes(r) == LUSU_CPC
    assert_no_dose(r)
    assert monitoring(r) == "2026-12-03"  # a refer before any start: as for the US, procedure - 2


def test_lusutrombopag_child_pugh_c_us_warns_at_a_start():
    r = run(cpc("us"))
    assert outcome(r) == ("start", 3, "lusutrombopag.start")
    assert rules(r) == ["lusutrombopag.start", "lusutrombopag.child_pugh_c"]
    assert codes(r) == LUSU_CPC


def test_lusutrombopag_child_pugh_c_jp_refers_during_a_course():
    # Day 3 (since d(-2)), procedure d(8): day 7 is d(4), 4 days before it (in the window).
    r = run(cpc("jp", procedure_date=d(8), current_dose=dose(3, "mg", d(-2), d(-1))))
    assert outcome(r) == ("refer", None, "lusutrombopag.child_pugh_c")
    assert rules(r) == ["lusutrombopag.child_pugh_c"]  # no modifier entry: the refer carries it
    assert codes(r) == LUSU_CPC
    assert r["rationale"][0]["text"] == (
        "Day 3: Child-Pugh C, lusutrombopag is contraindicated in the Japanese label; "
        "the clinician decides whether to stop the course."
    )
    assert r["rationale"][0]["source"] == "Mulpleta Japan PI (contraindication: Child-Pugh C)"
    assert_no_dose(r)
    assert monitoring(r) == d(2)  # JP: day 5 (day 1 + 4), no count on it yet


def test_lusutrombopag_child_pugh_c_jp_refers_before_the_day5_stop():
    # Day 5 with a rise that would stop the course (baseline 30, 55 today): child_pugh_c comes first.
    r = run(
        cpc(
            "jp",
            procedure_date=d(6),
            current_dose=dose(3, "mg", d(-4), d(-1)),
            labs=[platelets(30, d(-5)), platelets(55, d(0))],
        )
    )
    assert outcome(r) == ("refer", None, "lusutrombopag.child_pugh_c")
    assert codes(r) == LUSU_CPC
    assert monitoring(r) == d(4)  # day 5 has a count: procedure - 2


def test_lusutrombopag_child_pugh_c_us_warns_during_a_course():
    r = run(cpc("us", procedure_date=d(8), current_dose=dose(3, "mg", d(-2), d(-1))))
    assert outcome(r) == ("continue", 3, "lusutrombopag.continue")
    assert rules(r) == ["lusutrombopag.continue", "lusutrombopag.child_pugh_c"]
    assert r["rationale"][1]["text"] == "Child-Pugh C: not studied in severe hepatic impairment."
    assert codes(r) == LUSU_CPC
    assert r["schedule"] == span(0, 4)
    assert monitoring(r) == d(6)


@pytest.mark.parametrize(
    ("region", "expected_rules", "expected_codes"),
    [
        ("jp", ["lusutrombopag.complete"], LUSU),  # complete comes first: no refer
        ("us", ["lusutrombopag.complete", "lusutrombopag.child_pugh_c"], LUSU_CPC),  # a modifier
    ],
)
def test_lusutrombopag_child_pugh_c_after_the_course_is_complete(region, expected_rules, expected_codes):
    r = run(cpc(region, procedure_date=d(4), current_dose=dose(3, "mg", d(-7), d(-1))))  # day 8
    assert r["action"] == "complete"
    assert rules(r) == expected_rules
    assert codes(r) == expected_codes
    assert_no_dose(r)


def test_lusutrombopag_child_pugh_c_jp_dose_not_a_level_comes_first():
    r = run(cpc("jp", procedure_date=d(8), current_dose=dose(2, "mg", d(-2), d(-1))))
    assert outcome(r) == ("refer", None, "dose.not_a_level")
    assert codes(r) == ["dose_outside_label", "portal_vein_thrombosis", "lactation"]


# =============================================================================================
# Luspatercept (RULES.md 4). Base here: 50 kg, 1 mg/kg since d(-42), last given d(-21) (next due
# AS_OF), 1 dose at the level, no transfusions, Hb 9.0 yesterday.
# 50 kg: 0.6 = 30 mg; 0.8 = 40 mg (0.8 mL, 2 x 25); 1 = 50 mg (1.0 mL, 2 x 25); 1.33 = 66.5 mg
# (1.33 mL, 2 injections, 75); 1.75 = 87.5 mg (1.75 mL, 2 injections, 75 + 25).
# =============================================================================================


def lusp(indication: str = "mds", **overrides: Any) -> dict[str, Any]:
    request = luspatercept(
        indication,
        patient={"weight_kg": 50},
        current_dose=dose(1, "mg/kg", d(-42), d(-21), doses_at_level=1),
        transfusions=[],
        labs=[hemoglobin(9.0, d(-1))],
    )
    request.update(overrides)
    return request


def assert_lusp_continue_at_1(r: dict[str, Any]) -> None:
    assert outcome(r) == ("continue", 1, "luspatercept.continue")
    assert r["total"] == {"amount": 50, "unit": "mg"}
    assert r["volume_ml"] == 1.0
    assert r["injections"] == 1
    assert r["vials"] == vials((25, 2), unit="mg")
    assert r["next_dose_date"] == AS_OF
    assert r["next_monitoring"] == {"date": d(21), "tests": ["hemoglobin"]}  # dose today: before the next


@pytest.mark.parametrize(
    ("value", "unit", "held"),
    [
        (11.5, "g/dL", True),  # >= 11.5
        (11.49, "g/dL", False),
        (7.13, "mmol/L", False),  # 11.48643 g/dL
        (7.14, "mmol/L", True),  # 11.50254 g/dL
        (7.1384, "mmol/L", False),  # 11.4999624 g/dL: below, though it rounds to 11.50
        (7.1385, "mmol/L", True),  # 11.5001235 g/dL
        (115, "g/L", True),  # 11.5 g/dL
        (114.9, "g/L", False),  # 11.49 g/dL
    ],
)
def test_luspatercept_hb_high(value, unit, held):
    r = run(lusp(labs=[hemoglobin(value, d(-1), unit)]))
    assert codes(r) == LUSP_MDS
    if held:
        assert outcome(r) == ("hold", None, "luspatercept.hb_high")
        assert_no_dose(r)
        assert r["next_monitoring"] == {"date": d(7), "tests": ["hemoglobin"]}
    else:
        assert_lusp_continue_at_1(r)
    assert len(rules(r)) == 1


@pytest.mark.parametrize(
    ("transfusion_date", "held"),
    [
        (d(-22), False),  # Hb date - 21: a transfusion in the window
        (d(-2), False),  # Hb date - 1
        (d(-23), True),  # Hb date - 22: outside
        (d(-1), True),  # on the Hb's own date (pre-transfusion value)
    ],
)
def test_luspatercept_hb_high_absence_of_transfusion(transfusion_date, held):
    r = run(lusp(transfusions=[{"date": transfusion_date, "units": 2}], labs=[hemoglobin(11.8, d(-1))]))
    if held:
        assert outcome(r) == ("hold", None, "luspatercept.hb_high")
        assert_no_dose(r)
        assert monitoring(r) == d(7)
    else:
        assert_lusp_continue_at_1(r)  # 1 dose at level: no increase either
    assert codes(r) == LUSP_MDS


@pytest.mark.parametrize(
    ("value", "unit", "resumed"),
    [
        (11.0, "g/dL", True),  # <= 11.0
        (11.01, "g/dL", False),
        (110, "g/L", True),
        (6.82, "mmol/L", True),  # 10.98702 g/dL
        (6.83, "mmol/L", False),  # 11.00313 g/dL
        (6.828, "mmol/L", True),  # 10.999908 g/dL
        (6.8281, "mmol/L", False),  # 11.0000691 g/dL: above, though it rounds to 11.00
    ],
)
def test_luspatercept_resume(value, unit, resumed):
    r = run(
        lusp(
            on_hold=True,
            current_dose=dose(1, "mg/kg", d(-42), d(-35)),
            labs=[hemoglobin(value, d(-1), unit)],
        )
    )
    assert codes(r) == LUSP_MDS  # no late_dose after a resume: next dose is as_of
    if resumed:
        assert outcome(r) == ("resume", 1, "luspatercept.resume")
        assert r["total"] == {"amount": 50, "unit": "mg"}
        assert r["next_dose_date"] == AS_OF
        assert monitoring(r) == d(21)
        assert rules(r) == ["luspatercept.resume"]
    else:
        assert outcome(r) == ("hold", None, "luspatercept.still_held")
        assert_no_dose(r)
        assert monitoring(r) == d(7)


@pytest.mark.parametrize(
    ("value", "unit", "starts"),
    [
        (11.49, "g/dL", True),
        (11.5, "g/dL", False),  # 11.5 or more: refer
        (7.13, "mmol/L", True),  # 11.48643
        (115, "g/L", False),
    ],
)
def test_luspatercept_start_refers_at_11_5(value, unit, starts):
    r = run(lusp(current_dose=None, labs=[hemoglobin(value, d(-1), unit)]))
    assert codes(r) == LUSP_MDS
    if starts:
        assert outcome(r) == ("start", 1, "luspatercept.start")
        assert r["total"] == {"amount": 50, "unit": "mg"}
        assert r["next_dose_date"] == AS_OF
        assert monitoring(r) == d(21)
    else:
        assert outcome(r) == ("refer", None, "luspatercept.start")
        assert_no_dose(r)
        assert monitoring(r) == d(7)  # not a lab refer: the usual as_of + 7


@pytest.mark.parametrize(
    ("earlier", "later", "transfusions", "reduced"),
    [
        (hemoglobin(8.0, d(-22)), hemoglobin(10.0, d(-1)), [], False),  # exactly 2.0: not more than
        (hemoglobin(8.0, d(-22)), hemoglobin(10.01, d(-1)), [], True),  # 2.01, earlier at d - 21
        (hemoglobin(8.0, d(-23)), hemoglobin(10.01, d(-1)), [], False),  # earlier at d - 22
        (hemoglobin(8.0, d(-2)), hemoglobin(10.01, d(-1)), [], True),  # earlier at d - 1
        (hemoglobin(8.0, d(-22)), hemoglobin(10.01, d(-1)), [d(-10)], False),  # transfusion between
        (hemoglobin(8.0, d(-22)), hemoglobin(10.01, d(-1)), [d(-22)], False),  # on e's date: "from e"
        (hemoglobin(8.0, d(-22)), hemoglobin(10.01, d(-1)), [d(-2)], False),  # on d - 1
        (hemoglobin(8.0, d(-22)), hemoglobin(10.01, d(-1)), [d(-1)], True),  # on the later value's date
        (hemoglobin(8.0, d(-22)), hemoglobin(10.01, d(-1)), [d(-23)], True),  # before e
        (hemoglobin(80, d(-22), "g/L"), hemoglobin(6.21, d(-1), "mmol/L"), [], True),  # 10.00431 - 8.0
        (hemoglobin(80, d(-22), "g/L"), hemoglobin(6.2, d(-1), "mmol/L"), [], False),  # 9.9882 - 8.0
    ],
)
def test_luspatercept_hb_rise(earlier, later, transfusions, reduced):
    r = run(lusp(labs=[earlier, later], transfusions=[{"date": t, "units": 1} for t in transfusions]))
    assert codes(r) == LUSP_MDS
    if reduced:
        assert outcome(r) == ("decrease", 0.8, "luspatercept.hb_rise")
        assert r["total"] == {"amount": 40, "unit": "mg"}
        assert r["volume_ml"] == 0.8
        assert r["injections"] == 1
        assert r["vials"] == vials((25, 2), unit="mg")
        assert r["next_dose_date"] == AS_OF
        assert monitoring(r) == d(21)
    else:
        assert_lusp_continue_at_1(r)  # 1 dose at level: transfusions cause no increase


def test_luspatercept_hb_rise_from_lowest_level_discontinues():
    r = run(
        lusp(
            current_dose=dose(0.6, "mg/kg", d(-42), d(-21), doses_at_level=1),
            labs=[hemoglobin(8.0, d(-22)), hemoglobin(10.01, d(-1))],
        )
    )
    assert outcome(r) == ("discontinue", None, "luspatercept.hb_rise")
    assert_no_dose(r)
    assert r["next_monitoring"] is None  # after discontinuation: none
    assert codes(r) == LUSP_MDS


@pytest.mark.parametrize(
    ("doses", "transfusion_date", "increased"),
    [
        (2, d(-14), True),  # 2 doses, not transfusion-free at this level
        (1, d(-14), False),  # 1 dose: too early
        (2, d(-42), True),  # transfusion on `since`: on or after since
        (2, d(-43), False),  # before `since`: transfusion-free at this level
    ],
)
def test_luspatercept_mds_increase(doses, transfusion_date, increased):
    r = run(
        lusp(
            current_dose=dose(1, "mg/kg", d(-42), d(-21), doses_at_level=doses),
            transfusions=[{"date": transfusion_date, "units": 1}],
        )
    )
    if increased:
        assert outcome(r) == ("increase", 1.33, "luspatercept.increase")
        assert r["total"] == {"amount": 66.5, "unit": "mg"}
        assert r["volume_ml"] == 1.33
        assert r["injections"] == 2
        assert r["vials"] == vials((75, 1), unit="mg")
        assert codes(r) == [*LUSP_MDS, "split_injection"]
        assert rules(r) == ["luspatercept.increase", "dose.split_injection"]
        assert r["next_dose_date"] == AS_OF
        assert monitoring(r) == d(21)
    else:
        assert_lusp_continue_at_1(r)
        assert codes(r) == LUSP_MDS


# Beta-thalassaemia: 1 mg/kg since d(-42) (42 days); 3 units transfused d(-30):
# 3 x 84 / 42 = 6 per 12 weeks.
@pytest.mark.parametrize(
    ("doses", "baseline", "transfusions", "action", "amount", "rule"),
    [
        (2, 6, [(d(-30), 3)], "increase", 1.25, "luspatercept.increase"),  # 6 == baseline: no reduction
        (2, 6.01, [(d(-30), 3)], "continue", 1, "luspatercept.continue"),  # 6 < 6.01: a reduction
        (2, 5.99, [(d(-30), 3)], "increase", 1.25, "luspatercept.increase"),
        (2, 6, [(d(-42), 3)], "increase", 1.25, "luspatercept.increase"),  # on `since`: counts
        (2, 6, [(d(-43), 3)], "continue", 1, "luspatercept.continue"),  # before `since`: 0 units
        (1, 6, [(d(-30), 3)], "continue", 1, "luspatercept.continue"),  # 1 dose at level
        (2, None, [(d(-30), 3)], "refer", None, "luspatercept.increase"),  # missing baseline
        (1, None, [(d(-30), 3)], "continue", 1, "luspatercept.continue"),  # other conditions do not hold
    ],
)
def test_luspatercept_beta_thalassemia_increase(doses, baseline, transfusions, action, amount, rule):
    request = lusp(
        "beta_thalassemia",
        current_dose=dose(1, "mg/kg", d(-42), d(-21), doses_at_level=doses),
        transfusions=[{"date": date, "units": units} for date, units in transfusions],
    )
    if baseline is not None:
        request["baseline_rbc_units_per_12_weeks"] = baseline
    r = run(request)
    assert outcome(r) == (action, amount, rule)
    if action == "increase":
        assert r["total"] == {"amount": 62.5, "unit": "mg"}
        assert r["volume_ml"] == 1.25
        assert r["injections"] == 2
        assert r["vials"] == vials((75, 1), unit="mg")
        assert codes(r) == [*LUSP_BT, "split_injection"]
        assert rules(r) == ["luspatercept.increase", "dose.split_injection"]
        assert monitoring(r) == d(21)
    elif action == "refer":
        assert_no_dose(r)
        assert codes(r) == [
            "hypertension",
            "missing_input",
            "thrombosis_risk",
            "embryo_fetal_toxicity",
            "extramedullary_hematopoiesis",
            "label_update_pending",
        ]
        assert rules(r) == ["luspatercept.increase"]
        assert monitoring(r) == d(7)
    else:
        assert r["total"] == {"amount": 50, "unit": "mg"}
        assert codes(r) == LUSP_BT
        assert rules(r) == ["luspatercept.continue"]
        assert monitoring(r) == d(21)


@pytest.mark.parametrize(
    ("indication", "level", "doses", "baseline", "action", "rule"),
    [
        ("mds", 1.75, 3, 4, "discontinue", "luspatercept.no_response"),  # 2 x 84 / 42 = 4 == baseline
        ("mds", 1.75, 2, 4, "continue", "luspatercept.continue"),
        ("mds", 1.75, 3, 4.01, "continue", "luspatercept.continue"),  # 4 < 4.01: a reduction
        ("mds", 1.75, 3, None, "refer", "luspatercept.no_response"),  # baseline needed
        ("beta_thalassemia", 1.25, 3, 4, "discontinue", "luspatercept.no_response"),
        ("beta_thalassemia", 1.25, 2, 4, "continue", "luspatercept.continue"),
        ("beta_thalassemia", 1.25, 3, None, "refer", "luspatercept.no_response"),
    ],
)
def test_luspatercept_no_response_at_maximum(indication, level, doses, baseline, action, rule):
    request = lusp(
        indication,
        current_dose=dose(level, "mg/kg", d(-42), d(-21), doses_at_level=doses),
        transfusions=[{"date": d(-30), "units": 2}],
    )
    if baseline is not None:
        request["baseline_rbc_units_per_12_weeks"] = baseline
    r = run(request)
    standing = LUSP_MDS if indication == "mds" else LUSP_BT
    if action == "discontinue":
        assert outcome(r) == ("discontinue", None, rule)
        assert_no_dose(r)
        assert codes(r) == [standing[0], "no_response", *standing[1:]]
        assert r["next_monitoring"] is None
    elif action == "refer":
        assert outcome(r) == ("refer", None, rule)
        assert_no_dose(r)
        assert codes(r) == [standing[0], "missing_input", *standing[1:]]
        assert monitoring(r) == d(7)
    else:
        assert outcome(r) == ("continue", level, rule)
        total = {1.75: 87.5, 1.25: 62.5}[level]
        assert r["total"] == {"amount": total, "unit": "mg"}
        assert r["volume_ml"] == level  # 50 kg / 50 mg per mL
        assert r["injections"] == 2
        expected_vials = vials((75, 1), (25, 1), unit="mg") if total == 87.5 else vials((75, 1), unit="mg")
        assert r["vials"] == expected_vials
        assert codes(r) == [*standing, "split_injection"]
        assert monitoring(r) == d(21)


@pytest.mark.parametrize(
    ("weight", "total", "volume", "injections", "expected_vials"),
    [
        (60, 60, 1.2, 1, [(75, 1)]),  # 1.2 mL: not above 1.2
        (60.2, 60.2, 1.2, 1, [(75, 1)]),  # 1.204 rounds to 1.2
        (60.3, 60.3, 1.21, 2, [(75, 1)]),  # 1.206 rounds to 1.21
        (60.5, 60.5, 1.21, 2, [(75, 1)]),
        (120, 120, 2.4, 2, [(75, 1), (25, 2)]),  # ceil(2.4 / 1.2) = 2
        (120.5, 120.5, 2.41, 3, [(75, 1), (25, 2)]),
    ],
)
def test_luspatercept_split_injection(weight, total, volume, injections, expected_vials):
    r = run(lusp(patient={"weight_kg": weight}))
    assert outcome(r) == ("continue", 1, "luspatercept.continue")
    assert r["total"] == {"amount": total, "unit": "mg"}
    assert r["volume_ml"] == volume
    assert r["injections"] == injections
    assert r["vials"] == vials(*expected_vials, unit="mg")
    if injections > 1:
        assert codes(r) == [*LUSP_MDS, "split_injection"]
        assert rules(r) == ["luspatercept.continue", "dose.split_injection"]
    else:
        assert codes(r) == LUSP_MDS
        assert rules(r) == ["luspatercept.continue"]


@pytest.mark.parametrize(
    ("last_given", "next_dose", "next_check", "late"),
    [
        (d(-21), AS_OF, d(21), False),  # last_given + 21 == as_of
        (d(-22), AS_OF, d(21), True),  # due yesterday: today, late_dose
        (d(-20), d(1), d(1), False),  # due tomorrow: the Hb check is on the dose date
    ],
)
def test_luspatercept_late_dose(last_given, next_dose, next_check, late):
    r = run(lusp(current_dose=dose(1, "mg/kg", d(-42), last_given, doses_at_level=1)))
    assert outcome(r) == ("continue", 1, "luspatercept.continue")
    assert r["next_dose_date"] == next_dose
    assert r["schedule"] == [next_dose]
    assert monitoring(r) == next_check
    if late:
        assert codes(r) == [*LUSP_MDS, "late_dose"]
        assert rules(r) == ["luspatercept.continue", "dose.late"]
    else:
        assert codes(r) == LUSP_MDS
        assert rules(r) == ["luspatercept.continue"]


def test_ruleset_version_is_v1_1():
    """RULES.md v1.1 wherever the version shows; the response's `ruleset` stays DRUG/REGION."""
    from core import __doc__ as core_doc
    from core.engine import RULESET_VERSION
    from core.framework import CONVENTIONS_SOURCE

    assert RULESET_VERSION == "v1.1"
    assert CONVENTIONS_SOURCE == "HemaDose ruleset v1.1, section 0 (conventions)"
    assert core_doc is not None
    assert "(ruleset v1.1)" in core_doc
    assert run(romiplostim())["ruleset"] == "romiplostim/us"
