"""The trend chart's data (flows/trend.py) per drug: series, bands, dose steps and marks, not pixels.

The bands are checked against core's own constants (one source) and at their edges (RULES.md 0,
"Bounds"); the steps and marks against hand-made records whose every date and dose is asserted.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from bot.chart_examples import example_charts
from core import hetrombopag, luspatercept, lusutrombopag, romiplostim
from core.bands import bands_for, jp_stop_from
from flows import trend
from flows.state import LabRecord, TransfusionRecord
from flows.trend import DoseEntry, RecommendationEntry, TrendRecord, build, caption, dose_steps
from flows.trend_data import WINDOW_DAYS, DoseStep

D = dt.date
Dec = Decimal


def lab(value: str, day: dt.date, unit: str = "10^9/L", test: str = "platelets") -> LabRecord:
    return LabRecord(test=test, value=value, unit=unit, date=day)


def rec(
    day: dt.date,
    action: str,
    rule: str,
    amount: str | None = None,
    unit: str | None = None,
    drug: str = "romiplostim",
    next_dose: dt.date | None = None,
) -> RecommendationEntry:
    return RecommendationEntry(day, drug, action, rule, amount, unit, next_dose)


def actions(chart: trend.TrendChart) -> list[tuple[str, str | None, Decimal | None]]:
    return [(b.action, b.condition, b.low if b.low is not None else b.high) for b in chart.bands.bands]


# --- bands: core's numbers, at their edges ------------------------------------------------------------


@pytest.mark.parametrize("region", ["us", "eu"])
def test_romiplostim_bands_are_the_regions_thresholds(region: str):
    limits = romiplostim.THRESHOLDS[region]
    bands = {b.action: b for b in bands_for("romiplostim", "itp", region).bands}
    assert (bands["increase"].low, bands["increase"].high) == (None, romiplostim.LOW)
    assert (bands["reduce"].low, bands["reduce"].high, bands["reduce"].condition) == (
        limits.reduce_above,
        limits.hold_above,
        "two_weeks",
    )
    assert (bands["hold"].low, bands["hold"].high) == (limits.hold_above, None)
    assert (bands["resume"].high, bands["resume"].condition) == (limits.resume_below, "on_hold")
    assert [b.rule for b in bands.values()] == [
        "romiplostim.increase",
        "romiplostim.reduce",
        "romiplostim.hold",
        "romiplostim.resume",
    ]


def test_romiplostim_us_and_eu_edges_are_the_labels_numbers():
    assert bands_for("romiplostim", "itp", "us").edges() == [Dec(50), Dec(200), Dec(400)]
    assert bands_for("romiplostim", "itp", "eu").edges() == [Dec(50), Dec(150), Dec(250)]
    assert bands_for("romiplostim", "itp").region == "us"  # the default region


def test_band_edges_follow_above_and_below_strictly_and_or_more_inclusively():
    us = {b.action: b for b in bands_for("romiplostim", "itp", "us").bands}
    assert not us["hold"].holds(Dec(400))
    assert us["hold"].holds(Dec("400.1"))
    assert us["reduce"].holds(Dec(400))
    assert not us["reduce"].holds(Dec(200))
    assert us["increase"].holds(Dec("49.9"))
    assert not us["increase"].holds(Dec(50))
    lusp = {b.action: b for b in bands_for("luspatercept", "mds").bands}
    assert lusp["hold"].holds(Dec("11.5"))
    assert not lusp["hold"].holds(Dec("11.49"))
    assert lusp["resume"].holds(Dec("11.0"))
    assert not lusp["resume"].holds(Dec("11.01"))


@pytest.mark.parametrize(("indication", "low"), [("itp", Dec(50)), ("cit", Dec(100))])
def test_hetrombopag_bands_per_indication(indication: str, low: Decimal):
    bands = {b.action: b for b in bands_for("hetrombopag", indication).bands}
    assert bands["increase"].high == hetrombopag.LADDERS[indication].low == low
    assert (bands["reduce"].low, bands["reduce"].high) == (hetrombopag.REDUCE_ABOVE, hetrombopag.HOLD_ABOVE)
    assert bands["hold"].low == hetrombopag.HOLD_ABOVE == Dec(400)
    assert bands["resume"].high == hetrombopag.RESUME_BELOW == Dec(150)
    assert {b.condition for b in bands.values()} == {"after_two_weeks_at_level", "always", "on_hold"}


def test_luspatercept_bands_are_the_haemoglobin_hold_and_resume():
    bands = bands_for("luspatercept", "beta_thalassemia")
    assert (bands.test, bands.unit) == ("hemoglobin", "g/dL")
    assert [(b.action, b.rule, b.low, b.high) for b in bands.bands] == [
        ("hold", "luspatercept.hb_high", luspatercept.HOLD_AT_OR_ABOVE, None),
        ("resume", "luspatercept.resume", None, luspatercept.RESUME_AT_OR_BELOW),
    ]
    assert Dec("11.5") == luspatercept.HOLD_AT_OR_ABOVE


def test_lusutrombopag_bands_and_the_jp_stop_edge_from_the_baseline():
    us = bands_for("lusutrombopag", "cld_procedure", "us")
    assert [(b.action, b.high) for b in us.bands] == [
        ("start", lusutrombopag.NOT_LOW),
        ("low_before_procedure", lusutrombopag.PRE_PROCEDURE_LOW),
    ]
    jp = bands_for("lusutrombopag", "cld_procedure", "jp", baseline=Dec(36))
    stop = jp.bands[-1]
    assert (stop.action, stop.rule, stop.low, stop.low_inclusive) == ("stop", "lusutrombopag.jp_stop", Dec(56), True)
    assert jp_stop_from(Dec(20)) == Dec(50)  # at least 50 whatever the baseline
    assert jp_stop_from(None) == lusutrombopag.NOT_LOW
    assert (jp.rise_over_baseline, jp.baseline) == (lusutrombopag.JP_STOP_RISE, Dec(36))


def test_unknown_indication_or_region_has_no_bands():
    with pytest.raises(KeyError):
        bands_for("romiplostim", "itp", "jp")
    with pytest.raises(KeyError):
        bands_for("hetrombopag", "mds")


# --- chart data per drug --------------------------------------------------------------------------------


def test_romiplostim_chart_series_steps_and_marks():
    record = TrendRecord(
        "RX-12",
        "romiplostim",
        "itp",
        "us",
        labs=(
            lab("30", D(2026, 10, 4)),
            lab("45000", D(2026, 10, 11), "/uL"),  # converted as the rules convert: 45 x10^9/L
            lab("420", D(2026, 10, 18)),
            lab("150", D(2026, 10, 25)),
            lab("999", D(2026, 10, 26)),
            lab("160", D(2026, 10, 26)),  # the same date: the one stored last counts
            lab("11", D(2026, 10, 20), "g/dL", "hemoglobin"),  # not the deciding test: not drawn
        ),
        doses=(DoseEntry(D(2026, 10, 5), "1", "mcg/kg"), DoseEntry(D(2026, 10, 12), "2", "mcg/kg")),
        recommendations=(
            rec(D(2026, 10, 5), "start", "romiplostim.start", "1", "mcg/kg", next_dose=D(2026, 10, 5)),
            rec(D(2026, 10, 12), "increase", "romiplostim.increase", "2", "mcg/kg", next_dose=D(2026, 10, 12)),
            rec(D(2026, 10, 19), "hold", "romiplostim.hold"),
            rec(D(2026, 10, 22), "refer", "lab.stale"),  # a refer changes no dose
            rec(D(2026, 10, 26), "resume", "romiplostim.resume", "1", "mcg/kg", next_dose=D(2026, 10, 26)),
            rec(D(2026, 10, 1), "start", "hetrombopag.start", "2.5", "mg", drug="hetrombopag"),  # another drug
        ),
    )
    chart = build(record)
    assert chart is not None
    assert (chart.start, chart.end, chart.test, chart.unit, chart.dose_unit) == (
        D(2026, 10, 4),
        D(2026, 10, 26),
        "platelets",
        "10^9/L",
        "mcg/kg",
    )
    assert [(p.date, p.value) for p in chart.points] == [
        (D(2026, 10, 4), Dec(30)),
        (D(2026, 10, 11), Dec(45)),
        (D(2026, 10, 18), Dec(420)),
        (D(2026, 10, 25), Dec(150)),
        (D(2026, 10, 26), Dec(160)),
    ]
    assert chart.steps == (
        DoseStep(D(2026, 10, 5), D(2026, 10, 12), Dec(1), False),
        DoseStep(D(2026, 10, 12), D(2026, 10, 19), Dec(2), False),
        DoseStep(D(2026, 10, 19), D(2026, 10, 26), Dec(2), True),  # the hold keeps the level, shaded
        DoseStep(D(2026, 10, 26), D(2026, 10, 26), Dec(1), False),
    )
    assert [(m.date, m.action, m.text, m.rule, m.value) for m in chart.marks] == [
        (D(2026, 10, 5), "start", "START 1 mcg/kg", "romiplostim.start", Dec(30)),
        (D(2026, 10, 12), "increase", "INCREASE 2 mcg/kg", "romiplostim.increase", Dec(45)),
        (D(2026, 10, 19), "hold", "HOLD", "romiplostim.hold", Dec(420)),
        (D(2026, 10, 22), "refer", "REFER", "lab.stale", Dec(420)),
        (D(2026, 10, 26), "resume", "RESUME 1 mcg/kg", "romiplostim.resume", Dec(160)),
    ]
    assert chart.transfusions == ()
    assert chart.title == "RX-12 · Romiplostim\nITP · US label\n2026-10-04 to 2026-10-26"
    assert (chart.value_axis, chart.dose_axis) == ("Platelet count (×10⁹/L)", "Dose (mcg/kg)")


def test_hetrombopag_cit_chart_uses_the_cit_band_and_daily_doses():
    record = TrendRecord(
        "HT-3",
        "hetrombopag",
        "cit",
        "cn",
        labs=(lab("60", D(2026, 11, 1)), lab("80", D(2026, 11, 15))),
        doses=(DoseEntry(D(2026, 11, 14), "7.5", "mg"), DoseEntry(D(2026, 11, 14), "7.5", "mg", "missed")),
        recommendations=(
            rec(D(2026, 11, 2), "start", "hetrombopag.start", "7.5", "mg", "hetrombopag", D(2026, 11, 2)),
            rec(D(2026, 11, 16), "increase", "hetrombopag.increase", "10", "mg", "hetrombopag", D(2026, 11, 16)),
        ),
    )
    chart = build(record)
    assert chart is not None
    assert actions(chart)[0] == ("increase", "after_two_weeks_at_level", Dec(100))
    assert [(s.start, s.end, s.amount, s.on_hold) for s in chart.steps] == [
        (D(2026, 11, 2), D(2026, 11, 16), Dec("7.5"), False),
        (D(2026, 11, 16), D(2026, 11, 16), Dec(10), False),
    ]
    assert [v.text for v in chart.band_views] == [
        "Increase: below 100 after 14 days at the dose",
        "Reduce: above 250 after 14 days at the dose",
        "Hold: above 400",
        "Resume: below 150 while on hold",
    ]


def test_lusutrombopag_jp_chart_has_the_baseline_stop_edge_and_the_course_ends():
    record = TrendRecord(
        "LU-1",
        "lusutrombopag",
        "cld_procedure",
        "jp",
        labs=(lab("36", D(2026, 11, 9)), lab("41", D(2026, 11, 11)), lab("64", D(2026, 11, 14))),
        recommendations=(
            rec(D(2026, 11, 10), "start", "lusutrombopag.start", "3", "mg", "lusutrombopag", D(2026, 11, 10)),
            rec(D(2026, 11, 15), "discontinue", "lusutrombopag.jp_stop", drug="lusutrombopag"),
        ),
    )
    chart = build(record)
    assert chart is not None
    assert chart.bands.baseline == Dec(36)  # the latest count on or before day 1 (2026-11-10)
    assert actions(chart)[-1] == ("stop", "from_day_5_jp", Dec(56))
    assert (
        chart.band_views[-1].text == "Stop (target reached): 56 or more (at least 20 above the baseline 36) from day 5"
    )
    assert chart.steps == (
        DoseStep(D(2026, 11, 10), D(2026, 11, 15), Dec(3), False),
        DoseStep(D(2026, 11, 15), D(2026, 11, 15), None, False),  # stopped
    )
    assert [m.text for m in chart.marks] == ["START 3 mg", "DISCONTINUE"]


def test_luspatercept_chart_converts_haemoglobin_and_sums_transfusions_per_day():
    record = TrendRecord(
        "LP-7",
        "luspatercept",
        "mds",
        "us",
        labs=(
            lab("81", D(2026, 9, 1), "g/L", "hemoglobin"),  # 8.1 g/dL
            lab("11.8", D(2026, 9, 22), "g/dL", "hemoglobin"),
            lab("30", D(2026, 9, 22)),  # platelets: not luspatercept's deciding test
        ),
        transfusions=(
            TransfusionRecord(date=D(2026, 8, 30), units="1"),
            TransfusionRecord(date=D(2026, 8, 30), units="1"),
            TransfusionRecord(date=D(2026, 9, 10), units="2"),
        ),
        recommendations=(
            rec(D(2026, 9, 2), "start", "luspatercept.start", "1", "mg/kg", "luspatercept", D(2026, 9, 2)),
            rec(D(2026, 9, 23), "hold", "luspatercept.hb_high", drug="luspatercept"),
        ),
    )
    chart = build(record)
    assert chart is not None
    assert [(p.date, p.value) for p in chart.points] == [(D(2026, 9, 1), Dec("8.1")), (D(2026, 9, 22), Dec("11.8"))]
    assert [(t.date, t.value) for t in chart.transfusions] == [(D(2026, 8, 30), Dec(2)), (D(2026, 9, 10), Dec(2))]
    assert (chart.start, chart.end) == (D(2026, 8, 30), D(2026, 9, 23))
    assert chart.steps == (
        DoseStep(D(2026, 9, 2), D(2026, 9, 23), Dec(1), False),
        DoseStep(D(2026, 9, 23), D(2026, 9, 23), Dec(1), True),
    )
    assert chart.bands.bands[0].holds(chart.points[-1].value)  # 11.8 is in the hold band
    assert caption(chart) == (
        "Trend of LP-7: 2 haemoglobin results from 2026-08-30 to 2026-09-23; dose (mg/kg) on the right axis, "
        "holds shaded, transfusions as bars.\n"
        "Last recommendation (2026-09-23): HOLD (luspatercept.hb_high).\n"
        "Bands (US label, g/dL):\n"
        "• Hold: 11.5 or more with no transfusion in the 21 days before\n"
        "• Resume: 11 or less while on hold"
    )


def test_a_long_record_shows_its_newest_window_with_the_dose_in_effect_at_its_start():
    first = D(2025, 1, 5)
    labs = tuple(lab(str(40 + n), first + dt.timedelta(days=7 * n)) for n in range(60))
    record = TrendRecord(
        "RX-9",
        "romiplostim",
        "itp",
        "eu",
        labs=labs,
        recommendations=(rec(first, "start", "romiplostim.start", "1", "mcg/kg", next_dose=first),),
    )
    chart = build(record)
    assert chart is not None
    assert chart.end == first + dt.timedelta(days=7 * 59)
    assert chart.start == chart.end - dt.timedelta(days=WINDOW_DAYS)
    assert len(chart.points) == 27  # 26 weeks and the end's own
    assert chart.steps == (DoseStep(chart.start, chart.end, Dec(1), False),)  # started before the window
    assert chart.marks == ()  # the start is outside the window


def test_dose_steps_put_the_days_recommendation_after_its_doses():
    doses = [DoseEntry(D(2026, 11, 1), "3", "mcg/kg")]
    recommendations = [rec(D(2026, 11, 1), "hold", "romiplostim.hold")]
    assert dose_steps(doses, recommendations, D(2026, 11, 1), D(2026, 11, 8)) == (
        DoseStep(D(2026, 11, 1), D(2026, 11, 8), Dec(3), True),
    )


def test_nothing_to_draw_without_a_drug_or_without_a_deciding_result():
    no_drug = TrendRecord("RX-1", None, None, None)
    assert build(no_drug) is None
    assert trend.nothing_to_draw(no_drug).startswith("No treatment or results are on record for RX-1 yet")
    no_counts = TrendRecord("RX-2", "romiplostim", "itp", "us", labs=(lab("9", D(2026, 11, 1), "g/dL", "hemoglobin"),))
    assert build(no_counts) is None
    assert trend.nothing_to_draw(no_counts) == (
        "No platelet counts are on record for RX-2 yet, so there is no trend to draw. "
        "Save a consultation with a result (Save to patient), then ask again."
    )


def test_every_example_chart_is_drawn_from_core_decisions():
    charts = example_charts()
    assert sorted(charts) == ["hetrombopag", "luspatercept", "lusutrombopag", "romiplostim"]
    romi = charts["romiplostim"]
    assert [m.action for m in romi.marks].count("hold") == 2
    assert any(s.on_hold for s in romi.steps)
    assert [m.rule for m in charts["lusutrombopag"].marks][-1] == "lusutrombopag.jp_stop"
    assert charts["luspatercept"].transfusions
    for chart in charts.values():
        assert len(caption(chart)) <= trend.CAPTION_LIMIT
