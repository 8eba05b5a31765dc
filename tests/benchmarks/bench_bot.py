"""Bot benchmark: the dialogues through `Application.process_update`, against a bare echo bot.

    python tests/benchmarks/bench_bot.py [--rounds 3] [--idle 2000]

Replays every dialogue of tests/dialogues/ through the real python-telegram-bot Application with
SQLite on disk (offline Bot API), timing each update, in two ways:

- steady: one database engine for the whole run, as a running bot has (its statement cache and
  connection stay warm); each dialogue still starts on empty tables. This is the headline figure.
- cold: a fresh engine per dialogue, as the test suite replays them, so each dialogue compiles its
  statements anew (what a bot pays once per statement after a start).

Then feeds the very same updates to a bare python-telegram-bot echo bot (one reply per update),
and to python-telegram-bot alone sending the replies HemaDose sent (same texts and keyboards, no
flow, no database): the floor that our replies cost before any of our work.

Prints updates per second, their ratio to the echo bot (goal <= 3.0), the 99th-percentile time per
update (goal <= 5 ms), and the memory held per idle conversation (goal <= 4 KiB: conversations
live in the database). Asserts nothing.
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

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, TypeHandler, filters

from bot.offline import TOKEN, RecordingRequest, SentMessage
from bot.replay import Harness, load, replay
from bot.storage import Storage, open_storage
from bot.storage.tables import Base

DIALOGUES = sorted((Path(__file__).resolve().parents[1] / "dialogues").glob("*.yaml"))


class TimedHarness(Harness):
    """The replay harness, timing each update; keeps the updates and our replies for the floors."""

    timings: ClassVar[list[float]] = []
    updates: ClassVar[list[dict[str, Any]]] = []
    replies: ClassVar[list[list[SentMessage]]] = []

    async def process(self, update: dict[str, Any]) -> list[SentMessage]:
        parsed = Update.de_json(update, self.application.bot)
        start = time.perf_counter()
        await self.application.process_update(parsed)
        TimedHarness.timings.append(time.perf_counter() - start)
        sent = self.request.take()
        TimedHarness.updates.append(update)
        TimedHarness.replies.append(sent)
        return sent


class SteadyHarness(TimedHarness):
    """One engine for the run (as a running bot); each dialogue starts on emptied tables."""

    folder: ClassVar[str] = ""
    shared: ClassVar[Storage | None] = None

    async def open_storage(self) -> Storage:
        if SteadyHarness.shared is None:
            SteadyHarness.shared = await open_storage(f"sqlite:///{SteadyHarness.folder}/steady.db")
        if self.storage is None:  # this dialogue's first start, not a restart within it
            async with SteadyHarness.shared.engine.begin() as connection:
                for table in reversed(Base.metadata.sorted_tables):
                    await connection.execute(table.delete())
        return SteadyHarness.shared

    async def close_storage(self, storage: Storage) -> None:
        return None  # kept for the next dialogue; closed at the end of the run


async def run_dialogues(harness: type[TimedHarness]) -> tuple[list[float], int]:
    """Every dialogue once; the time of each update, and how many dialogues failed."""
    import bot.replay

    TimedHarness.timings, TimedHarness.updates, TimedHarness.replies = [], [], []
    bot.replay.Harness = harness  # type: ignore[misc]
    failed = 0
    try:
        for path in DIALOGUES:
            failed += not (await replay(load(path))).passed
    finally:
        bot.replay.Harness = Harness  # type: ignore[misc]
    return TimedHarness.timings, failed


async def bare_bot(updates: list[dict[str, Any]], replies: list[list[SentMessage]] | None) -> list[float]:
    """python-telegram-bot with no flow and no database: it echoes each update (`replies` None), or
    sends, for each update, the replies HemaDose sent to it."""
    queue = iter(replies or [])

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(update.message.text or "")

    async def echo_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        assert update.effective_chat is not None
        await query.answer()
        await context.bot.send_message(update.effective_chat.id, query.data or "")

    async def ours(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.callback_query is not None:
            await update.callback_query.answer()
        for sent in next(queue):
            markup = InlineKeyboardMarkup(
                [[InlineKeyboardButton(b["text"], callback_data=b["callback_data"]) for b in r] for r in sent.buttons]
            )
            await context.bot.send_message(sent.chat_id, sent.text, reply_markup=markup if sent.buttons else None)

    request = RecordingRequest()
    app = Application.builder().token(TOKEN).request(request).get_updates_request(request).updater(None).build()
    if replies is None:
        app.add_handler(MessageHandler(filters.TEXT, echo))
        app.add_handler(CallbackQueryHandler(echo_button))
    else:
        app.add_handler(TypeHandler(Update, ours))
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


def figures(timings: list[float]) -> str:
    rate = len(timings) / sum(timings)
    p99 = statistics.quantiles(timings, n=100)[98] * 1000
    return (
        f"{rate:,.0f} updates/s, mean {1000 / rate:.2f} ms, p50 {statistics.median(timings) * 1000:.2f} ms, "
        f"p99 {p99:.2f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="times each dialogue is replayed")
    parser.add_argument("--idle", type=int, default=2000, help="idle conversations for the memory figure")
    args = parser.parse_args()

    import logging

    logging.getLogger("hemadose.telegram").setLevel(logging.ERROR)  # the access dialogues' refusals

    # Rounds interleave the two ways, so that a noisy moment of the machine touches both alike.
    steady: list[float] = []
    cold: list[float] = []
    p99s: dict[str, list[float]] = {"steady": [], "cold": []}
    failed = 0
    with tempfile.TemporaryDirectory() as folder:
        SteadyHarness.folder = folder
        for _ in range(args.rounds):
            for name, harness, pooled in (("cold", TimedHarness, cold), ("steady", SteadyHarness, steady)):
                timings, failures = await run_dialogues(harness)
                pooled += timings
                p99s[name].append(statistics.quantiles(timings, n=100)[98] * 1000)
                failed += failures
        if SteadyHarness.shared is not None:
            await SteadyHarness.shared.close()
    updates, replies = TimedHarness.updates, TimedHarness.replies  # one round's (the last one)
    echo = await bare_bot(updates * args.rounds, None)
    floor = await bare_bot(updates * args.rounds, replies * args.rounds)
    echo_rate = len(echo) / sum(echo)

    def ratio(timings: list[float]) -> float:
        return echo_rate / (len(timings) / sum(timings))

    def by_round(name: str) -> str:
        return ", ".join(f"{p99:.2f}" for p99 in p99s[name])

    print(f"dialogues: {len(DIALOGUES)} x {args.rounds} rounds, {len(steady)} updates ({failed} dialogue runs failed)")
    print(f"HemaDose, steady (one engine for the run):  {figures(steady)}  (goal p99 <= 5 ms)")
    print(f"HemaDose, cold (a fresh engine per dialogue): {figures(cold)}")
    print(f"  p99 by round (ms): steady {by_round('steady')}; cold {by_round('cold')}")
    print(f"bare echo bot (same updates):                {figures(echo)}")
    print(f"python-telegram-bot sending our replies only: {figures(floor)}  (no flow, no database)")
    print(f"ratio echo / HemaDose steady: {ratio(steady):.2f}  (goal <= 3.0); cold: {ratio(cold):.2f}")
    print(f"ratio echo / our replies only: {ratio(floor):.2f}  (the floor: sending our texts and keyboards)")
    per_conversation = await idle_memory(args.idle)
    print(
        f"memory per idle conversation: {per_conversation:,.0f} bytes over {args.idle} conversations "
        "(goal <= 4096; their state is in the database)"
    )


if __name__ == "__main__":
    asyncio.run(main())
