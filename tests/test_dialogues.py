"""Every dialogue in tests/dialogues/, replayed through the real python-telegram-bot Application."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.offline import SentMessage
from bot.replay import ReplayResult, asserts_whole, bless, check, is_card, load, replay, show

DIALOGUES = sorted((Path(__file__).parent / "dialogues").glob("*.yaml"))
_RESULTS: dict[Path, ReplayResult] = {}  # each dialogue is replayed once for both tests below


async def _replayed(path: Path, new_db_url: Callable[[str], str]) -> ReplayResult:
    """On a fresh database (SQLite, or PostgreSQL when HEMADOSE_TEST_DB_URL is set: tests/conftest.py)."""
    if path not in _RESULTS:
        _RESULTS[path] = await replay(load(path), new_db_url("replay"))
    return _RESULTS[path]


@pytest.mark.parametrize("path", DIALOGUES, ids=[p.stem for p in DIALOGUES])
async def test_dialogue(path: Path, new_db_url: Callable[[str], str]) -> None:
    result = await _replayed(path, new_db_url)
    report = "\n".join(m.report() for m in result.mismatches)
    assert result.passed, f"{result.title}\n{report}\n\ntranscript:\n" + "\n".join(result.transcript)


@pytest.mark.parametrize("path", DIALOGUES, ids=[p.stem for p in DIALOGUES])
async def test_every_recommendation_is_asserted_whole(path: Path, new_db_url: Callable[[str], str]) -> None:
    """A step that replies with a recommendation card holds it whole (`card:`, or `equals:` on it)."""
    result = await _replayed(path, new_db_url)
    assert not result.unasserted, (
        f"{path.name}: steps {result.unasserted} reply with a recommendation card but do not assert it whole; "
        f"add `card:` (hemadose replay --bless {path})"
    )


def _message(text: str, labels: list[str]) -> SentMessage:
    return SentMessage(1, text, [[{"text": label, "callback_data": label} for label in labels]], {})


CARD = "Romiplostim · ITP · US label · patient RX-12\n\nCONTINUE: 3 mcg/kg\n\nRule: romiplostim.continue · Nplate US PI"
RESULT_BUTTONS = ["Save to patient", "Why?", "New consultation"]


def test_a_card_is_a_rule_line_with_the_result_buttons() -> None:
    assert is_card(CARD, RESULT_BUTTONS)
    assert not is_card(CARD, [])  # quoted without the result buttons
    assert not is_card("Why this recommendation:\n1. ... [romiplostim.continue; Nplate US PI 2.2]", RESULT_BUTTONS)
    assert not is_card("Saved to RX-12: dose, result and recommendation.", RESULT_BUTTONS)


def test_card_expectation_is_exact_and_shows_a_diff() -> None:
    replies = [_message("Please check", ["✅ Get recommendation"]), _message(CARD, RESULT_BUTTONS)]
    assert check({"card": CARD + "\n"}, replies) == []  # a `|` block scalar's final newline
    problems = check({"card": CARD.replace("CONTINUE: 3", "CONTINUE: 4")}, replies)
    assert len(problems) == 1
    assert "-CONTINUE: 4 mcg/kg\n+CONTINUE: 3 mcg/kg" in problems[0]
    assert check({"card": CARD}, replies[:1]) == ["expected a recommendation card; none was sent"]
    assert asserts_whole({"equals": CARD}, replies)
    assert not asserts_whole({"equals": CARD}, [*replies, _message("Saved", RESULT_BUTTONS)])
    assert not asserts_whole({"contains": "CONTINUE: 3 mcg/kg"}, replies)


VISIT = """\
title: bless test
today: 2026-11-22
steps:
  - send: /new
  - press: Romiplostim
  - press: US label
  - send: RX-12
  - send: "72"
  - press: Adult (18 or over)
  - press: Today
  - press: On treatment
  - send: "3"
  - send: 2026-11-01
  - send: 2026-11-15
  - send: "32"
  - press: Yesterday
"""
NEW_CARD = """\
      card: |
        Romiplostim · ITP · US label · patient RX-12

        INCREASE: 4 mcg/kg (was 3)
        Dose: 288 mcg (4 mcg/kg × 72 kg) = 0.58 mL of the 500 mcg/mL solution
        Vials: 1 × 250 mcg + 1 × 125 mcg
        Next dose: Sun 2026-11-22
        Next check: platelet count on Sun 2026-11-29

        Warnings:
        ⚠ Thrombotic and thromboembolic complications can occur; portal vein thrombosis has been reported in \
chronic liver disease. Do not aim for normal platelet counts.

        Rule: romiplostim.increase · Nplate US PI 2.2
        HemaDose rules v1.1. This supports, and does not replace, clinical judgement.
"""


async def _blessed(tmp_path: Path, last_steps: str) -> tuple[str, list[str]]:
    path = tmp_path / "d.yaml"
    path.write_text(VISIT + last_steps)
    notes = bless(path, await replay(load(path)))
    again = await replay(load(path))
    assert again.passed, [m.report() for m in again.mismatches]
    assert again.unasserted == []
    return path.read_text(), notes


async def test_bless_adds_the_card_to_a_step_without_expect(tmp_path: Path) -> None:
    text, notes = await _blessed(tmp_path, "  # the card\n  - press: ✅ Get recommendation\n  - send: /patients\n")
    assert text == VISIT + "  # the card\n  - press: ✅ Get recommendation\n    expect:\n" + NEW_CARD + (
        "  - send: /patients\n"
    )
    assert notes == []


async def test_bless_replaces_fragments_and_keeps_other_checks(tmp_path: Path) -> None:
    step = (
        "  - press: ✅ Get recommendation\n"
        "    expect:\n"
        "      contains:\n"
        '        - "INCREASE: 4 mcg/kg (was 3)"\n'
        '        - "Dose: 288 mcg (4 mcg/kg × 72 kg) · inject 0.58 mL"\n'
        "      buttons: [Save to patient]  # kept\n"
    )
    text, notes = await _blessed(tmp_path, step)
    assert text == VISIT + (
        "  - press: ✅ Get recommendation\n    expect:\n      buttons: [Save to patient]  # kept\n" + NEW_CARD
    )
    assert notes == ["dropped a fragment no reply has any more: 'Dose: 288 mcg (4 mcg/kg × 72 kg) · inject 0.58 mL'"]


async def test_bless_refreshes_a_stale_card_and_writes_out_a_flow_step(tmp_path: Path) -> None:
    stale = "  - press: ✅ Get recommendation\n    expect:\n      card: |\n        INCREASE: 5 mcg/kg\n"
    text, _ = await _blessed(tmp_path, stale)
    assert text == VISIT + "  - press: ✅ Get recommendation\n    expect:\n" + NEW_CARD
    text, _ = await _blessed(tmp_path, "  - {as: 1001, press: ✅ Get recommendation}\n")
    assert text == VISIT + "  - as: 1001\n    press: ✅ Get recommendation\n    expect:\n" + NEW_CARD


async def test_show_prints_each_exchange(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(VISIT + "  - press: ✅ Get recommendation\n")
    shown = show(await replay(load(path))).splitlines()
    assert shown[0] == "== bless test"
    assert shown[1:3] == ["[1] user 1001: /new", "  bot: Which drug?"]
    assert shown[3].startswith("       [Romiplostim] [Hetrombopag]")
    assert "[14] user 1001: [✅ Get recommendation]" in shown
    assert "       [Save to patient] [Why?] [New consultation] [Trend]" in shown


def test_a_dialogue_with_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    """A second `expect:` in one step would silently replace the first one's checks."""
    path = tmp_path / "twice.yaml"
    path.write_text("steps:\n  - send: /start\n    expect: {contains: Welcome}\n    expect: {replies: 9}\n")
    with pytest.raises(ValueError, match="line 4: the key 'expect' is given twice"):
        load(path)
