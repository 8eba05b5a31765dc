"""Reminder benchmark: finding what is due among 100,000 scheduled occurrences, and sending 10,000.

    python tests/benchmarks/bench_reminders.py [--scheduled 100000] [--due 10000]

Fills SQLite on disk with `--scheduled` occurrences (users, patients, reminders, spread over the
coming year), of which `--due` are due now. Prints:
- the time to find the due ones (the scheduler's own query, one batch, and all of them), against a
  database with a tenth as many scheduled;
- sends per second for the due reminders through the real python-telegram-bot Application and
  the offline Bot API, rate limits off (each claimed, sent and confirmed in the database);
- the Python heap at its peak during that run, for both database sizes: it must not grow with the
  number of occurrences scheduled (only what is due is ever loaded).
Asserts nothing.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import insert, select

from bot.reminders import Reminders
from bot.replay import Harness
from bot.sending import TelegramSender
from bot.storage.tables import Occurrence, PatientRow, Reminder, User

NOW = dt.datetime(2026, 11, 22, 9, 0)
PER_USER = 10  # reminders (patients) per user


async def fill(harness: Harness, scheduled: int, due: int) -> None:
    """`scheduled` occurrences, `due` of them due at NOW, the rest over the next 365 days."""
    assert harness.storage is not None
    reminders = scheduled // 5  # five occurrences per reminder
    users = max(1, reminders // PER_USER)
    async with harness.storage.engine.begin() as connection:
        await connection.execute(
            insert(User),
            [{"id": u, "external_id": f"tg:{u}", "time_zone": "UTC", "created_at": NOW} for u in range(1, users + 1)],
        )
        rows: list[dict[str, Any]] = []
        for r in range(1, reminders + 1):
            rows.append({"id": r, "user_id": (r - 1) // PER_USER + 1, "label": f"P{r}", "created_at": NOW})
        await connection.execute(insert(PatientRow), rows)
        await connection.execute(
            insert(Reminder),
            [
                {
                    "id": r,
                    "user_id": (r - 1) // PER_USER + 1,
                    "patient_id": r,
                    "chat_key": f"tg:{(r - 1) // PER_USER + 1}:{(r - 1) // PER_USER + 1}",
                    "drug": "hetrombopag",
                    "dose_amount": "5",
                    "dose_unit": "mg",
                    "dose_text": "5 mg",
                    "lab_text": "platelet count",
                    "local_time": "09:00",
                    "status": "active",
                    "created_at": NOW,
                }
                for r in range(1, reminders + 1)
            ],
        )
        occurrences = []
        for n in range(scheduled):
            reminder = n % reminders + 1
            if n < due:
                day, when = NOW.date(), NOW
            else:
                day = NOW.date() + dt.timedelta(days=1 + n % 365)
                when = dt.datetime.combine(day, dt.time(9))
            occurrences.append(
                {
                    "reminder_id": reminder,
                    "kind": "lab",  # a blood-test reminder: one message each, no dose bookkeeping
                    "on_date": day,
                    "due_at": when,
                    "state": "scheduled",
                    "sends": 0,
                    "next_at": when,
                }
            )
        for start in range(0, len(occurrences), 20_000):
            await connection.execute(insert(Occurrence), occurrences[start : start + 20_000])


async def find_due(reminders: Reminders, batch: int) -> float:
    """Seconds for the scheduler's due query (one batch, rows loaded), best of 5."""
    query = select(Occurrence.id).where(Occurrence.next_at <= NOW).order_by(Occurrence.next_at).limit(batch)
    best = float("inf")
    for _ in range(5):
        async with reminders.storage.session() as session:
            start = time.perf_counter()
            list(await session.scalars(query))
            best = min(best, time.perf_counter() - start)
    return best


async def scenario(scheduled: int, due: int, traced: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        harness = Harness(f"sqlite:///{folder}/bench.db", NOW.date(), None)
        harness.now = NOW.replace(tzinfo=dt.UTC) - dt.timedelta(hours=1)
        await harness.start()
        await fill(harness, scheduled, due)
        reminders = harness.service.reminders
        reminders.sender = TelegramSender(harness.application.bot, limits=False)
        first_batch = await find_due(reminders, reminders.batch)
        all_due = await find_due(reminders, due)
        harness.now = NOW.replace(tzinfo=dt.UTC)
        gc.collect()
        if traced:  # tracemalloc slows Python down: the rate is measured in a run without it
            tracemalloc.start()
        start = time.perf_counter()
        sent = await reminders.run_due()
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
        tracemalloc.stop()
        delivered = len(harness.request.take())
        await harness.stop()
    assert sent == delivered == due, (sent, delivered, due)
    return {"first_batch": first_batch, "all_due": all_due, "rate": due / elapsed, "peak": peak}


async def measured(scheduled: int, due: int) -> dict[str, float]:
    timed = await scenario(scheduled, due, traced=False)
    return timed | {"peak": (await scenario(scheduled, due, traced=True))["peak"]}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduled", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    small, large = args.scheduled // 10, args.scheduled
    results: dict[int, list[dict[str, float]]] = {small: [], large: []}
    for _ in range(args.rounds):
        for size in (small, large):
            results[size].append(await measured(size, min(args.due, size)))

    def median(size: int, key: str) -> float:
        return statistics.median(r[key] for r in results[size])

    print(f"scheduled occurrences: {large:,} (and {small:,} for comparison); due now: {args.due:,}")
    for size in (small, large):
        print(
            f"  {size:>7,} scheduled: find due, first batch of 500: {median(size, 'first_batch') * 1000:.2f} ms; "
            f"all {min(args.due, size):,} due: {median(size, 'all_due') * 1000:.1f} ms"
        )
    print(
        f"sends per second ({args.due:,} due, limits off, each claimed/sent/confirmed): "
        f"{median(large, 'rate'):,.0f} /s  (with {small:,} scheduled: {median(small, 'rate'):,.0f} /s)"
    )
    grown = median(large, "peak") / median(small, "peak")
    print(
        f"Python heap at its peak during the run: {median(small, 'peak') / 2**20:.1f} MiB with {small:,} scheduled, "
        f"{median(large, 'peak') / 2**20:.1f} MiB with {large:,} scheduled (ratio {grown:.2f}; "
        "flat = does not grow with what is scheduled)"
    )


if __name__ == "__main__":
    asyncio.run(main())
