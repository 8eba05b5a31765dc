"""Every dialogue in tests/dialogues/, replayed through the real python-telegram-bot Application."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.replay import load, replay

DIALOGUES = sorted((Path(__file__).parent / "dialogues").glob("*.yaml"))


@pytest.mark.parametrize("path", DIALOGUES, ids=[p.stem for p in DIALOGUES])
async def test_dialogue(path: Path) -> None:
    result = await replay(load(path))
    report = "\n".join(m.report() for m in result.mismatches)
    assert result.passed, f"{result.title}\n{report}\n\ntranscript:\n" + "\n".join(result.transcript)
