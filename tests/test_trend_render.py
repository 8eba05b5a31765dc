"""One rendered chart per drug (bot/charts.py): a PNG of the size drawn, with content, not a blank image.

Pixels are not compared (matplotlib's anti-aliasing changes between releases): the data is tested in
tests/test_trend.py; here the picture is checked for its header, size and that it holds the chart's
colours (Pillow, matplotlib's own image dependency).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from bot.chart_examples import example_charts
from bot.charts import DPI, OKABE_ITO, SIZE_INCHES, main, render

ROOT = Path(__file__).resolve().parent.parent
CHARTS = example_charts()
PNG = b"\x89PNG\r\n\x1a\n"


def _colours(png: bytes) -> set[str]:
    """Every colour of the picture as '#RRGGBB'."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    found = image.getcolors(maxcolors=image.width * image.height) or []
    return {"#{:02X}{:02X}{:02X}".format(*rgb) for _, rgb in found if isinstance(rgb, tuple)}


@pytest.mark.parametrize("drug", sorted(CHARTS))
def test_each_drugs_chart_renders_as_a_phone_sized_png_with_content(drug: str):
    png = render(CHARTS[drug])
    assert png.startswith(PNG)
    assert 30_000 < len(png) < 1_000_000  # a chart, and small enough for a phone's data plan
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (int(SIZE_INCHES[0] * DPI), int(SIZE_INCHES[1] * DPI))
    stats = ImageStat.Stat(image)
    assert min(stats.stddev) > 20  # not blank: a white page has 0
    colours = _colours(png)
    assert len(colours) > 50
    # The result line (black), the dose step (purple) and the recommendation marks (blue) are drawn.
    assert {OKABE_ITO["black"], OKABE_ITO["purple"], OKABE_ITO["blue"]} <= colours


def test_the_luspatercept_chart_has_its_transfusion_bars():
    assert OKABE_ITO["vermillion"] in _colours(render(CHARTS["luspatercept"]))  # the bars, solid


def test_the_examples_script_writes_one_png_per_drug(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["--examples", str(tmp_path)]) == 0
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == ["hetrombopag.png", "luspatercept.png", "lusutrombopag.png", "romiplostim.png"]
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / f"{drug}.png") for drug in CHARTS]


def test_the_documentation_images_are_committed_for_each_drug():
    for drug in CHARTS:
        path = ROOT / "docs" / "charts" / f"{drug}.png"
        assert path.read_bytes().startswith(PNG), f"{path}: python -m bot.charts --examples docs/charts"
