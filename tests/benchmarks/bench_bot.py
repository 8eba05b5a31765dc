"""Bot benchmark: the dialogues through `Application.process_update`, against a bare echo bot.

    python tests/benchmarks/bench_bot.py [--rounds 3] [--idle 2000]

Replays every dialogue of tests/dialogues/ through the real python-telegram-bot Application with
SQLite on disk (offline Bot API), timing each update; then feeds the very same updates to a bare
python-telegram-bot echo bot (one reply per update). Prints updates per second for both, their
ratio (goal <= 3.0), the 99th-percentile time per update (goal <= 5 ms), and the memory held per
idle conversation (goal <= 4 KiB: conversations live in the database). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.offline import TOKEN, RecordingRequest, SentMessage
from bot.replay import Harness, load, replay

DIALOGUES = sorted((Path(__file__).resolve().parents[1] / "dialogues").glob("*.yaml"))


class TimedHarness(Harness):
    """The replay harness, timing each update and keeping it for the echo bot."""

    timings: ClassVar[list[float]] = []
    updates: ClassVar[list[dict[str, Any]]] = []

    async def process(self, update: dict[str, Any]) -> list[SentMessage]:
        parsed = Update.de_json(update, self.application.bot)
        start = time.perf_counter()
        await self.application.process_update(parsed)
        TimedHarness.timings.append(time.perf_counter() - start)
        TimedHarness.updates.append(update)
        return self.request.take()


async def echo_bot(updates: list[dict[str, Any]]) -> list[float]:
    """The floor: python-telegram-bot answering each update with one message and nothing else."""

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(update.message.text or "")

    async def echo_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        assert update.effective_chat is not None
        await query.answer()
        await context.bot.send_message(update.effective_chat.id, query.data or "")

    request = RecordingRequest()
    app = Application.builder().token(TOKEN).request(request).get_updates_request(request).updater(None).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.add_handler(CallbackQueryHandler(echo_button))
    await app.initialize()
    timings = []
    for raw in updates:
        parsed = Update.de_json(raw, app.bot)
        start = time.perf_counter()
        await app.process_update(parsed)
        timings.append(time.perf_counter() - start)
        request.take()
    await app.shutdown()
    return timings


async def idle_memory(conversations: int) -> float:
    """Bytes of Python heap held per conversation left mid-consultation (after a warm-up)."""
    with tempfile.TemporaryDirectory() as folder:
        harness = Harness(f"sqlite:///{folder}/idle.db", dt.date(2026, 11, 22), None)
        await harness.start()

        async def open_consultations(first_user: int, count: int) -> None:
            for user in range(first_user, first_user + count):
                for text in ("/new", "Romiplostim", "US label"):  # then left waiting at "which patient?"
                    await harness.send(user, text)

        await open_consultations(10_000, 200)  # warm-up: caches, pools, lazy imports
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        await open_consultations(20_000, conversations)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        await harness.stop()
    return grown / conversations


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="times each dialogue is replayed")
    parser.add_argument("--idle", type=int, default=2000, help="idle conversations for the memory figure")
    args = parser.parse_args()

    import logging

    import bot.replay

    logging.getLogger("hemadose.telegram").setLevel(logging.ERROR)  # the access dialogues' refusals

    bot.replay.Harness = TimedHarness  # type: ignore[misc]
    failed = 0
    for _ in range(args.rounds):
        for path in DIALOGUES:
            result = await replay(load(path))
            failed += not result.passed
    bot.replay.Harness = Harness  # type: ignore[misc]
    ours = TimedHarness.timings
    floor = await echo_bot(TimedHarness.updates)
    count = len(ours)
    ours_rate, floor_rate = count / sum(ours), count / sum(floor)
    p99 = statistics.quantiles(ours, n=100)[98] * 1000
    print(f"dialogues: {len(DIALOGUES)} x {args.rounds} rounds, {count} updates ({failed} dialogue runs failed)")
    print(
        f"HemaDose (flows + SQLite on disk): {ours_rate:,.0f} updates/s, mean {1000 / ours_rate:.2f} ms, "
        f"p50 {statistics.median(ours) * 1000:.2f} ms, p99 {p99:.2f} ms  (goal p99 <= 5 ms)"
    )
    print(f"bare echo bot (same updates):      {floor_rate:,.0f} updates/s, mean {1000 / floor_rate:.2f} ms")
    print(f"ratio (echo rate / HemaDose rate): {floor_rate / ours_rate:.2f}  (goal <= 3.0)")
    per_conversation = await idle_memory(args.idle)
    print(
        f"memory per idle conversation: {per_conversation:,.0f} bytes over {args.idle} conversations "
        "(goal <= 4096; their state is in the database)"
    )


if __name__ == "__main__":
    asyncio.run(main())
