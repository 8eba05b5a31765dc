"""Every dialogue in tests/dialogues/, replayed through the real python-telegram-bot Application."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.offline import SentMessage
from bot.replay import ReplayResult, asserts_whole, check, is_card, load, replay

DIALOGUES = sorted((Path(__file__).parent / "dialogues").glob("*.yaml"))
_RESULTS: dict[Path, ReplayResult] = {}  # each dialogue is replayed once for both tests below


async def _replayed(path: Path) -> ReplayResult:
    if path not in _RESULTS:
        _RESULTS[path] = await replay(load(path))
    return _RESULTS[path]


@pytest.mark.parametrize("path", DIALOGUES, ids=[p.stem for p in DIALOGUES])
async def test_dialogue(path: Path) -> None:
    result = await _replayed(path)
    report = "\n".join(m.report() for m in result.mismatches)
    assert result.passed, f"{result.title}\n{report}\n\ntranscript:\n" + "\n".join(result.transcript)


@pytest.mark.parametrize("path", DIALOGUES, ids=[p.stem for p in DIALOGUES])
async def test_every_recommendation_is_asserted_whole(path: Path) -> None:
    """A step that replies with a recommendation card holds it whole (`card:`, or `equals:` on it)."""
    result = await _replayed(path)
    assert not result.unasserted, (
        f"{path.name}: steps {result.unasserted} reply with a recommendation card but do not assert it whole; "
        f"add `card:` (hemadose replay --bless {path})"
    )


def _message(text: str, labels: list[str]) -> SentMessage:
    return SentMessage(1, text, [[{"text": label, "callback_data": label} for label in labels]], {})


CARD = "Romiplostim · ITP · US label · patient RX-12\n\nCONTINUE: 3 mcg/kg\n\nRule: romiplostim.continue · Nplate US PI 2.2"
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
