"""The trend chart's data: what `/trend LABEL` draws, built from the patient's stored record (issue 14).

Transport-agnostic and without matplotlib: `build` turns the record (results, doses, transfusions,
recommendations) into series, the drug's threshold bands (core.bands: one source for each number),
the dose as steps with holds, and one mark per recommendation; bot/charts.py draws it. The tests
check this data, not pixels. The words around the chart (its caption, the replies when there is
nothing to draw) are here too, so every transport says the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation

from core import hetrombopag, luspatercept, lusutrombopag
from core.bands import Band, Bands, bands_for
from core.framework import DOSE_ACTIONS
from core.numbers import fmt
from core.registry import REGISTRY, rules_for
from core.units import UNITS_BY_TEST
from flows.buttons import RecordButton, RecordKind
from flows.names import REGION_NAMES
from flows.state import LabRecord
from flows.trend_data import (
    ACTION_WORDS,
    AXIS_UNITS,
    RESULT_NAMES,
    RESULTS_NAMES,
    ROWS_READ,
    WINDOW_DAYS,
    BandView,
    DoseEntry,
    DoseStep,
    Mark,
    Point,
    RecommendationEntry,
    TrendChart,
    TrendRecord,
)

__all__ = ["ROWS_READ", "DoseEntry", "RecommendationEntry", "TrendChart", "TrendRecord", "build", "caption"]
_DOSE_ACTIONS = DOSE_ACTIONS - {"continue"}  # a new level from the next dose date
_STOP_ACTIONS = frozenset({"discontinue", "complete"})


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _in_deciding_unit(lab: LabRecord) -> Decimal | None:
    """A stored result in the unit the rules decide in (core.units), exactly; None if unreadable."""
    factor = UNITS_BY_TEST.get(lab.test, {}).get(lab.unit)
    value = _decimal(lab.value)
    return value * factor if factor is not None and value is not None else None


_CONDITIONS = {
    "always": "",
    "on_hold": " while on hold",
    "two_weeks": " for 2 consecutive weeks",
    "after_two_weeks_at_level": f" after {hetrombopag.MIN_DAYS_TO_JUDGE} days at the dose",
    "no_transfusion": f" with no transfusion in the {luspatercept.TRANSFUSION_FREE_DAYS} days before",
    "before_start": " before the first dose",
    "from_day_5_jp": f" from day {lusutrombopag.JP_STOP_DAY}",
    "before_procedure": " just before the procedure",
}
_BAND_NAMES = {
    "increase": "Increase",
    "reduce": "Reduce",
    "hold": "Hold",
    "resume": "Resume",
    "start": "Start",
    "stop": "Stop (target reached)",
    "low_before_procedure": "Critical",
}


def band_text(band: Band, bands: Bands) -> str:
    """A band in words, e.g. "Reduce: above 200 for 2 consecutive weeks" ("above"/"below" strict,
    "or more"/"or less" not: RULES.md 0, "Bounds")."""
    parts = []
    if band.low is not None:
        parts.append(f"{fmt(band.low)} or more" if band.low_inclusive else f"above {fmt(band.low)}")
    if band.high is not None and band.low is None:
        parts.append(f"{fmt(band.high)} or less" if band.high_inclusive else f"below {fmt(band.high)}")
    where = " ".join(parts)
    if band.action == "stop" and bands.rise_over_baseline is not None:
        rise = fmt(bands.rise_over_baseline)
        where += (
            f" (at least {rise} above the baseline {fmt(bands.baseline)})"
            if bands.baseline is not None
            else f" and {rise} above the baseline (none on record)"
        )
    return f"{_BAND_NAMES[band.action]}: {where}{_CONDITIONS[band.condition]}"


def _action_text(entry: RecommendationEntry) -> str:
    action = ACTION_WORDS.get(entry.action, entry.action.upper())
    dose = f" {entry.dose_amount} {entry.dose_unit}" if entry.dose_amount and entry.dose_unit else ""
    return f"{action}{dose}"


def _steps(
    doses: Iterable[DoseEntry], recommendations: Iterable[RecommendationEntry]
) -> list[tuple[dt.date, Decimal | None, bool]]:
    """The dose in effect as it changed: (from, amount, on hold), oldest first.

    A given dose sets its amount from its day; a recommendation sets the next dose's level from its
    next dose date (start, increase, decrease, resume), holds from its date keeping the level (hold),
    ends the treatment (discontinue, complete), or keeps the level (continue); a refer changes
    nothing. On one day the recommendation comes after the doses: it is the day's last word.
    """
    events: list[tuple[dt.date, int, int, DoseEntry | RecommendationEntry]] = []
    events += [(d.date, 0, n, d) for n, d in enumerate(doses) if d.status == "given"]
    for n, r in enumerate(recommendations):
        when = (r.next_dose_date or r.decided) if r.action in _DOSE_ACTIONS else r.decided
        events.append((when, 1, n, r))
    events.sort(key=lambda event: event[:3])
    amount: Decimal | None = None
    on_hold = False
    changes: list[tuple[dt.date, Decimal | None, bool]] = []
    for day, _, _, event in events:
        if isinstance(event, DoseEntry):
            amount, on_hold = _decimal(event.amount), False
        elif event.action in _DOSE_ACTIONS and event.dose_amount is not None:
            amount, on_hold = _decimal(event.dose_amount), False
        elif event.action == "continue":
            amount = _decimal(event.dose_amount) if event.dose_amount is not None else amount
            on_hold = False
        elif event.action == "hold":
            on_hold = True
        elif event.action in _STOP_ACTIONS:
            amount, on_hold = None, False
        else:  # refer (or a dose action without a dose): the clinician decides; nothing changes here
            continue
        if changes and changes[-1][0] == day:
            changes.pop()
        if not changes or changes[-1][1:] != (amount, on_hold):
            changes.append((day, amount, on_hold))
    return changes


def dose_steps(
    doses: Iterable[DoseEntry], recommendations: Iterable[RecommendationEntry], start: dt.date, end: dt.date
) -> tuple[DoseStep, ...]:
    """The dose steps within [start, end]: the level in effect at `start` first, then each change."""
    changes = _steps(doses, recommendations)
    before = [c for c in changes if c[0] <= start]
    inside = [c for c in changes if start < c[0] <= end]
    kept = ([(start, *before[-1][1:])] if before else []) + inside
    steps = []
    for (day, amount, held), following in zip(kept, [*kept[1:], None], strict=True):
        until = following[0] if following is not None else end
        steps.append(DoseStep(day, until, amount, held))
    return tuple(steps)


def _latest_on_or_before(points: Sequence[Point], day: dt.date) -> Decimal | None:
    found = [p for p in points if p.date <= day]
    return found[-1].value if found else None


def _baseline(record: TrendRecord) -> Decimal | None:
    """Lusutrombopag: the latest count on or before day 1 of the newest course (RULES.md 3), day 1 being
    the first dose of its start recommendation; None for the other drugs or without a course."""
    if record.drug != "lusutrombopag":
        return None
    starts = [
        r.next_dose_date or r.decided for r in record.recommendations if r.drug == record.drug and r.action == "start"
    ]
    if not starts:
        return None
    day_one = max(starts)
    counts = sorted(
        (lab.date, position, value)
        for position, lab in enumerate(record.labs)
        if lab.test == "platelets" and lab.date <= day_one and (value := _in_deciding_unit(lab)) is not None
    )
    return counts[-1][2] if counts else None


def build(record: TrendRecord) -> TrendChart | None:
    """The chart of the record's newest `WINDOW_DAYS` days; None when there is no drug or no deciding
    result to draw (the caller says so)."""
    if record.drug is None or record.drug not in REGISTRY or record.indication is None:
        return None
    profile = rules_for(record.drug).profile
    region = record.region if record.region in profile.regions else profile.default_region
    try:
        bands = bands_for(record.drug, record.indication, region, _baseline(record))
    except KeyError:
        return None
    results = sorted(
        (lab.date, position, value)
        for position, lab in enumerate(record.labs)
        if lab.test == bands.test and (value := _in_deciding_unit(lab)) is not None
    )
    if not results:
        return None
    # Of two results on one date the one listed (stored) last counts (RULES.md 0): one point per date.
    by_date = {day: Point(day, value) for day, _, value in results}
    recommendations = [r for r in record.recommendations if r.drug == record.drug]
    dates = [*by_date, *(d.date for d in record.doses), *(r.decided for r in recommendations)]
    dates += [t.date for t in record.transfusions] if record.drug == "luspatercept" else []
    end = max(dates)
    start = max(min(dates), end - dt.timedelta(days=WINDOW_DAYS))
    points = tuple(p for day, p in sorted(by_date.items()) if start <= day <= end)
    if not points:
        return None
    transfusions: tuple[Point, ...] = ()
    if record.drug == "luspatercept":
        totals: dict[dt.date, Decimal] = {}
        for t in record.transfusions:
            units = _decimal(t.units)
            if start <= t.date <= end and units is not None:
                totals[t.date] = totals.get(t.date, Decimal(0)) + units
        transfusions = tuple(Point(day, units) for day, units in sorted(totals.items()))
    marks = tuple(
        Mark(r.decided, r.action, _action_text(r), r.rule, _latest_on_or_before(points, r.decided))
        for r in sorted(recommendations, key=lambda r: r.decided)
        if start <= r.decided <= end
    )
    doses = [d for d in record.doses if d.unit == profile.dosing_unit]
    return TrendChart(
        label=record.label,
        drug=record.drug,
        indication=record.indication,
        region=region,
        start=start,
        end=end,
        test=bands.test,
        unit=bands.unit,
        points=points,
        bands=bands,
        band_views=tuple(BandView(band, band_text(band, bands)) for band in bands.bands),
        dose_unit=profile.dosing_unit,
        steps=dose_steps(doses, recommendations, start, end),
        marks=marks,
        transfusions=transfusions,
    )


# --- the words around the chart -----------------------------------------------------------------

CAPTION_LIMIT = 1024  # Telegram's limit for a photo's caption


def caption(chart: TrendChart) -> str:
    """The photo's caption: what is drawn, the last recommendation and the bands in words."""
    count = len(chart.points)
    lines = [
        f"Trend of {chart.label}: {count} {RESULTS_NAMES[chart.test] if count != 1 else RESULT_NAMES[chart.test]}"
        f" from {chart.start.isoformat()} to {chart.end.isoformat()}; dose ({chart.dose_unit}) on the right axis"
        + (", holds shaded" if any(s.on_hold for s in chart.steps) else "")
        + (", transfusions as bars" if chart.transfusions else "")
        + "."
    ]
    if chart.marks:
        last = chart.marks[-1]
        lines.append(f"Last recommendation ({last.date.isoformat()}): {last.text} ({last.rule}).")
    region = REGION_NAMES.get(chart.region, chart.region)
    lines.append(f"Bands ({region}, {AXIS_UNITS.get(chart.unit, chart.unit)}):")
    lines += [f"• {view.text}" for view in chart.band_views]
    text = "\n".join(lines)
    return text if len(text) <= CAPTION_LIMIT else text[: CAPTION_LIMIT - 1] + "…"


def typed_button(text: str, label: str | None) -> str | None:
    """The card's Trend button typed by its label ("trend", any case): its data for the patient."""
    if label is None or " ".join(text.lower().split()) != "trend":
        return None
    return RecordButton(RecordKind.TREND, label).encode()


def ask_label() -> str:
    return "Which patient? Type /trend LABEL, e.g. /trend RX-12. /patients lists your labels."


def not_saved(label: str) -> str:
    """The card's Trend pressed before the consultation was saved: the chart is drawn from the record."""
    return (
        f"Nothing is saved for {label} yet, so there is no trend to draw: the chart is drawn from the "
        "patient's record. Press Save to patient first, then Trend."
    )


def nothing_to_draw(record: TrendRecord) -> str:
    """No drug on record, or no deciding result yet: say what the chart needs and how to get it."""
    if record.drug is None or record.drug not in REGISTRY:
        return (
            f"No treatment or results are on record for {record.label} yet, so there is no trend to draw. "
            "Save a consultation to the patient (Save to patient), then ask again."
        )
    test = rules_for(record.drug).profile.deciding_test
    return (
        f"No {RESULTS_NAMES[test]} are on record for {record.label} yet, so there is no trend to draw. "
        "Save a consultation with a result (Save to patient), then ask again."
    )
