"""Draws a trend chart (flows/trend.py's data) as a PNG with matplotlib, for a phone's screen.

matplotlib is imported here, inside `render`, only when a chart is drawn: `hemadose recommend`, the
chat and the bot start without it (tests/test_trend_imports.py). The Agg backend and the object API
(a `Figure`, no pyplot) draw without a display and without global state, so a chart can be drawn in
a worker thread. Large type, units on both axes, the label and dates in the title, and the
Okabe-Ito palette (told apart with colour-blindness; shapes and line styles carry meaning too).

`python -m bot.charts --examples DIR` writes one example chart per drug (bot/chart_examples.py):
the documentation images under docs/charts/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

from flows.trend_data import ACTION_WORDS, TrendChart

# Okabe & Ito (2008), "Color Universal Design": distinguishable with the common colour-vision deficiencies.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
BAND_COLOURS = {
    "increase": OKABE_ITO["sky_blue"],
    "start": OKABE_ITO["sky_blue"],
    "reduce": OKABE_ITO["orange"],
    "hold": OKABE_ITO["vermillion"],
    "low_before_procedure": OKABE_ITO["vermillion"],
    "resume": OKABE_ITO["green"],
    "stop": OKABE_ITO["green"],
}
# A recommendation's mark: a shape per action (read without colour), its word beside it.
MARKERS = {
    "start": "s",
    "increase": "^",
    "decrease": "v",
    "hold": "X",
    "resume": "o",
    "continue": "D",
    "discontinue": "P",
    "complete": "P",
    "refer": "*",
}
SIZE_INCHES = (9.0, 10.0)
DPI = 120  # 1080 x 1200 px: sharp on a phone, well under Telegram's photo limits
FONT = 17
MIN_DAYS_SHOWN = 7.0  # the date axis spans at least a week (a layout choice)


def _day(day: dt.date) -> float:
    import matplotlib.dates as mdates

    return float(mdates.date2num(dt.datetime(day.year, day.month, day.day)))  # type: ignore[no-untyped-call]


def _float(value: Decimal) -> float:
    return float(value)


def _value_limits(chart: TrendChart) -> tuple[float, float]:
    """The result axis: every result and every threshold in view, with room above for the marks."""
    values = [_float(p.value) for p in chart.points] + [_float(edge) for edge in chart.bands.edges()]
    top = max(values)
    if chart.test == "platelets":
        return 0.0, top * 1.18
    bottom = min(values)
    return max(0.0, bottom - 1.5), top + 1.5


def render(chart: TrendChart) -> bytes:
    """The chart as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    with matplotlib.rc_context({"font.size": FONT, "axes.titlesize": FONT + 2, "axes.labelsize": FONT}):
        figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
        luspatercept = bool(chart.transfusions) or chart.drug == "luspatercept"
        if luspatercept:
            axes, bars = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
        else:
            axes, bars = figure.subplots(1, 1), None
        low, high = _value_limits(chart)
        start, end = _day(chart.start), _day(chart.end)
        span = max(end - start, MIN_DAYS_SHOWN)  # a record of a day or two still shows a readable week
        widen = (span - (end - start)) / 2 + span * 0.04
        left, right = start - widen, end + widen
        handles: list[Any] = []

        # The bands: a shaded span where a single result acts at once, a dashed line where it acts under
        # a condition that overlaps another band (resume while on hold, a course's start and stop).
        for view in chart.band_views:
            band = view.band
            colour = BAND_COLOURS[band.action]
            lined = band.condition in ("on_hold", "from_day_5_jp", "before_procedure")
            if lined:
                edge = band.high if band.high is not None else band.low
                assert edge is not None
                line = axes.axhline(_float(edge), color=colour, linestyle="--", linewidth=2.5, label=view.text)
                handles.append(line)
                continue
            bottom = _float(band.low) if band.low is not None else low
            top = _float(band.high) if band.high is not None else high
            axes.axhspan(bottom, top, color=colour, alpha=0.22, linewidth=0)
            handles.append(Patch(facecolor=colour, alpha=0.45, label=view.text))

        # Holds shaded across the whole height, and the dose as a step line on its own axis.
        dose_axes = axes.twinx()
        for number, step in enumerate(chart.steps, 1):
            if step.on_hold:  # a hold still in effect is shaded to the right edge
                until = right if number == len(chart.steps) else _day(step.end)
                axes.axvspan(_day(step.start), until, facecolor="none", hatch="//", edgecolor="#7F7F7F", linewidth=0)
        if any(step.on_hold for step in chart.steps):
            handles.append(Patch(facecolor="none", hatch="//", edgecolor="#7F7F7F", label="Dose on hold"))
        xs: list[float] = []
        ys: list[float] = []
        for number, step in enumerate(chart.steps, 1):
            level = float("nan") if step.amount is None or step.on_hold else _float(step.amount)
            # The last step is the dose in effect now: drawn to the chart's right edge.
            xs += [_day(step.start), right if number == len(chart.steps) else _day(step.end)]
            ys += [level, level]
        if xs:
            (dose_line,) = dose_axes.plot(
                xs,
                ys,
                color=OKABE_ITO["purple"],
                linewidth=3,
                drawstyle="steps-post",
                label=f"Dose ({chart.dose_unit})",
            )
            handles.append(dose_line)
        amounts = [_float(step.amount) for step in chart.steps if step.amount is not None]
        dose_axes.set_ylim(0, (max(amounts) if amounts else 1) * 1.6)  # the steps in the lower part
        dose_axes.set_ylabel(chart.dose_axis, color=OKABE_ITO["purple"])
        dose_axes.tick_params(axis="y", colors=OKABE_ITO["purple"])

        # The results, and each recommendation at the result it was decided on.
        (result_line,) = axes.plot(
            [_day(p.date) for p in chart.points],
            [_float(p.value) for p in chart.points],
            color=OKABE_ITO["black"],
            marker="o",
            markersize=8,
            linewidth=2.5,
            label=chart.value_axis.split(" (")[0],
            zorder=5,
        )
        handles.append(result_line)
        previous = None
        for mark in chart.marks:
            y = _float(mark.value) if mark.value is not None else high * 0.95
            axes.plot(
                _day(mark.date),
                y,
                marker=MARKERS.get(mark.action, "*"),
                markersize=16,
                color=OKABE_ITO["blue"],
                markeredgecolor="white",
                zorder=6,
            )
            if mark.action in ("continue", previous):  # a word where the action changes; the shape says the rest
                previous = mark.action
                continue
            previous = mark.action
            axes.annotate(
                mark.text.split(" ")[0],
                (_day(mark.date), y),
                xytext=(0, 14),
                textcoords="offset points",
                ha="center",
                fontsize=FONT - 4,
                fontweight="bold",
                color=OKABE_ITO["blue"],
                zorder=7,
            )
        for action in dict.fromkeys(mark.action for mark in chart.marks):
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker=MARKERS.get(action, "*"),
                    markersize=12,
                    color=OKABE_ITO["blue"],
                    label=f"Recommendation: {ACTION_WORDS.get(action, action.upper()).lower()}",
                )
            )
        axes.set_ylim(low, high)
        axes.set_xlim(left, right)
        axes.set_ylabel(chart.value_axis)
        axes.set_title(chart.title)
        axes.grid(axis="y", alpha=0.3)
        axes.set_zorder(dose_axes.get_zorder() + 1)  # the results above the dose line
        axes.patch.set_visible(False)

        lowest = bars if bars is not None else axes
        if bars is not None:
            bars.bar(
                [_day(t.date) for t in chart.transfusions],
                [_float(t.value) for t in chart.transfusions],
                width=max(span / 60, 1.0),
                color=OKABE_ITO["vermillion"],
            )
            bars.set_ylabel("Transfused\n(units)")
            top = max([_float(t.value) for t in chart.transfusions], default=1.0)
            bars.set_ylim(0, top + 1)
            bars.grid(axis="y", alpha=0.3)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=7)  # type: ignore[no-untyped-call]
        lowest.xaxis.set_major_locator(locator)
        lowest.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))  # type: ignore[no-untyped-call]
        lowest.set_xlabel("Date")
        columns = 2 if len(handles) > 8 else 1
        for handle in handles:  # two columns of at most 40 characters fit the 1080-pixel width
            handle.set_label(textwrap.fill(str(handle.get_label()), 40))
        figure.legend(handles=handles, loc="outside lower center", ncols=columns, fontsize=FONT - 4, frameon=False)

        out = io.BytesIO()
        figure.savefig(out, format="png", dpi=DPI)
        return out.getvalue()


def write_examples(folder: Path) -> list[Path]:
    """One example chart per drug, from consultations run through the core (bot/chart_examples.py)."""
    from bot.chart_examples import example_charts

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, chart in example_charts().items():
        path = folder / f"{name}.png"
        path.write_bytes(render(chart))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.charts", description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, required=True, metavar="DIR", help="write one example chart per drug")
    args = parser.parse_args(argv)
    for path in write_examples(args.examples):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
