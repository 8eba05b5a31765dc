"""SQL statements and transactions per update, long polling against webhook mode (SQLite).

    python tests/benchmarks/count_statements.py [--limit N]

Replays every dialogue of tests/dialogues/ through the real python-telegram-bot Application
(bot.replay, offline Bot API), counting the statements and transactions SQLAlchemy runs while each
update is processed (its `before_cursor_execute` and `begin` events), first as long polling, then in
webhook mode (each update handled once across replicas: its id recorded, its replies kept until sent
and then marked sent, the marks of each dialogue's last update included). Setting up and closing the
database are not counted. Prints figures; asserts
nothing. Issue 13: the replies kept with the update may cost at most one statement per update.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

import bot.replay  # noqa: E402
from bot.offline import SentMessage  # noqa: E402
from bot.telegram_app import ONCE  # noqa: E402

DIALOGUES = sorted((ROOT / "tests" / "dialogues").glob("*.yaml"))


class Counts:
    def __init__(self) -> None:
        self.statements = 0
        self.transactions = 0
        self.updates = 0
        self.counting = False

    def statement(self, *_: Any) -> None:
        self.statements += self.counting

    def transaction(self, *_: Any) -> None:
        self.transactions += self.counting


def counting_harness(counts: Counts, webhook: bool) -> type[bot.replay.Harness]:
    class Counting(bot.replay.Harness):
        async def start(self) -> None:
            await super().start()
            self.application.bot_data[ONCE] = webhook
            assert self.storage is not None
            engine: Any = self.storage.engine
            sync = getattr(engine, "sync_engine", engine)
            event.listen(sync, "before_cursor_execute", counts.statement)
            event.listen(sync, "begin", counts.transaction)

        async def process(self, update: dict[str, Any]) -> list[SentMessage]:
            counts.updates += 1
            counts.counting = True
            try:
                return await super().process(update)
            finally:
                counts.counting = False

        async def stop(self) -> None:
            # As `hemadose run` stops: the marks of replies sent and not yet written (counted: the
            # last update's mark, which rides with no next update).
            if self.service is not None:
                counts.counting = True
                try:
                    await self.service.flush_sent()
                finally:
                    counts.counting = False
            await super().stop()

    return Counting


async def run(webhook: bool, limit: int | None) -> Counts:
    counts = Counts()
    original = bot.replay.Harness
    bot.replay.Harness = counting_harness(counts, webhook)  # type: ignore[misc]
    try:
        for path in DIALOGUES[:limit]:
            result = await bot.replay.replay(bot.replay.load(path))
            if not result.passed:
                raise SystemExit(f"{path.name} failed: the figures would not be the dialogues'")
    finally:
        bot.replay.Harness = original  # type: ignore[misc]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N dialogues")
    args = parser.parse_args()
    print(f"{'mode':<14}{'updates':>9}{'statements/update':>19}{'transactions/update':>21}")
    figures = {}
    for name, webhook in (("long polling", False), ("webhook", True)):
        counts = asyncio.run(run(webhook, args.limit))
        figures[name] = counts.statements / counts.updates
        print(
            f"{name:<14}{counts.updates:>9}{counts.statements / counts.updates:>19.2f}"
            f"{counts.transactions / counts.updates:>21.2f}"
        )
    print(f"webhook mode costs {figures['webhook'] - figures['long polling']:+.2f} statements per update")


if __name__ == "__main__":
    main()
