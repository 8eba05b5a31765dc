"""`hemadose replay`: dialogue files replayed through the real bot, offline (bot/replay.py)."""

from __future__ import annotations

from pathlib import Path

from bot.commands.common import EXIT_OK, EXIT_UNREADABLE


async def run_replay(files: list[Path], bless: bool = False, show: bool = False) -> int:
    from bot.replay import bless as write_cards
    from bot.replay import load, replay
    from bot.replay import show as exchanges

    failed = 0
    for path in files:
        result = await replay(load(path))
        if show:
            print(exchanges(result) + "\n")
        if bless:
            notes = write_cards(path, result)
            print(f"blessed {path}: {sum(len(c) for c in result.cards.values())} card(s)")
            for note in notes:
                print(f"  {note}")
            result = await replay(load(path))
        print(f"{'PASS' if result.passed else 'FAIL'} {path} ({result.steps} steps) {result.title}")
        if not result.passed:
            failed += 1
            for mismatch in result.mismatches:
                print(mismatch.report())
        if result.unasserted:
            print(f"  steps with a card not asserted whole: {result.unasserted} (hemadose replay --bless)")
    print(f"{len(files) - failed} passed, {failed} failed")
    return EXIT_OK if failed == 0 else EXIT_UNREADABLE
