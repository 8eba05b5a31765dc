"""User messages to a recommendation, per drug, for a new patient and for a follow-up.

    python tests/benchmarks/count_messages.py

Replays one dialogue per drug and case through the real bot (bot.replay) and counts what the
user sent (typed messages and button presses) from the message that opens the consultation
(`/new` or New consultation, or `/patients LABEL` for a follow-up) to the recommendation card, that message and
the last one included. Prints a table; tests/test_flows.py asserts the same counts.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.message_counts import table  # noqa: E402


def main() -> None:
    rows = asyncio.run(table())
    print(f"{'drug':<15}{'new patient':>12}{'follow-up':>11}")
    for drug, (new, follow_up) in rows.items():
        print(f"{drug:<15}{new:>12}{follow_up:>11}")


if __name__ == "__main__":
    main()
