"""Reminder benchmark: finding what is due among 100,000 scheduled occurrences, sending 10,000, and
sending at Telegram's pace over a simulated round trip.

    python tests/benchmarks/bench_reminders.py [--scheduled 100000] [--due 10000] [--paced 300]

Fills SQLite on disk with `--scheduled` occurrences (users, patients, reminders, spread over the
coming year), of which `--due` are due now. Prints:
- the time to find the due ones (the scheduler's own query, one batch, and all of them), against a
  database with a tenth as many scheduled;
- sends per second for the due reminders through the real python-telegram-bot Application and
  the offline Bot API, rate limits off (each claimed, sent and confirmed in the database; the
  sequential outbox did 167/s here, the concurrent one 781/s, on the 2-core test machine);
- the Python heap at its peak during that run, for both database sizes: it must not grow with the
  number of occurrences scheduled (only what is due is ever loaded);
- sends per second at Telegram's pace (`TelegramSender` with its limits on: 30/s overall, 1/s per
  chat) to a fake Bot whose send_message takes a simulated round trip of 0, 50 and 150 ms, for
  `--paced` reminders in realistic chats (a clinician's chat gets several: here 3 each), and the
  case of 10 due at once in one chat among the others, before (the figures measured on the
  sequential outbox, issue 12) and now.
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

from types import SimpleNamespace

from sqlalchemy import insert, select

from bot.reminders import Reminders
from bot.replay import Harness
from bot.sending import OVERALL_PER_SECOND, TelegramSender
from bot.storage import Storage, open_storage
from bot.storage.tables import Occurrence, PatientRow, Reminder, User

NOW = dt.datetime(2026, 11, 22, 9, 0)
PER_USER = 10  # reminders (patients) per user


def _reminder_row(number: int, chat: int) -> dict[str, Any]:
    """A hetrombopag reminder of patient `number` in `chat` (user and chat share the number), 09:00 UTC."""
    return {
        "id": number,
        "user_id": chat,
        "patient_id": number,
        "chat_key": f"tg:{chat}:{chat}",
        "drug": "hetrombopag",
        "dose_amount": "5",
        "dose_unit": "mg",
        "dose_text": "5 mg",
        "lab_text": "platelet count",
        "local_time": "09:00",
        "status": "active",
        "created_at": NOW,
    }


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
            [_reminder_row(r, (r - 1) // PER_USER + 1) for r in range(1, reminders + 1)],
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
    """Seconds for the scheduler's due query as the outbox runs it (with its join to the reminders
    and the transport's chats), one batch, rows loaded; best of 5."""
    query = (
        select(Occurrence.id)
        .join(Reminder, Reminder.id == Occurrence.reminder_id)
        .where(Occurrence.next_at <= NOW, Reminder.chat_key.startswith("tg:"))
        .order_by(Occurrence.next_at)
        .limit(batch)
    )
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


# Measured on the sequential outbox (each send awaited in turn; the per-chat limiter blocking all).
BEFORE = {0.05: 19.0, 0.15: 6.6, "one chat": 1.1}


class SlowBot:
    """Telegram over a network: each send_message takes `delay` seconds, then is accepted."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.accepted: list[tuple[float, int]] = []

    async def send_message(self, chat_id: int, text: str, reply_markup: Any = None) -> Any:
        await asyncio.sleep(self.delay)
        self.accepted.append((time.perf_counter(), chat_id))
        return SimpleNamespace(message_id=len(self.accepted))


async def seed_chats(storage: Storage, chats: dict[int, int]) -> None:
    """For each chat, that many patients with a blood-test reminder due at NOW (one message each)."""
    users, patients, reminders, occurrences = [], [], [], []
    number = 0
    for chat, count in chats.items():
        users.append({"id": chat, "external_id": f"tg:{chat}", "time_zone": "UTC", "created_at": NOW})
        for _ in range(count):
            number += 1
            patients.append({"id": number, "user_id": chat, "label": f"P{number}", "created_at": NOW})
            reminders.append(_reminder_row(number, chat))
            occurrences.append(
                {
                    "reminder_id": number,
                    "kind": "lab",
                    "on_date": NOW.date(),
                    "due_at": NOW,
                    "state": "scheduled",
                    "sends": 0,
                    "next_at": NOW,
                }
            )
    async with storage.engine.begin() as connection:
        for table, rows in ((User, users), (PatientRow, patients), (Reminder, reminders), (Occurrence, occurrences)):
            await connection.execute(insert(table), rows)


async def paced(chats: dict[int, int], delay: float) -> tuple[float, float, float, int]:
    """(messages/s overall, messages/s to the chats other than chat 1, seconds until chat 1's last,
    most sends in flight): every due reminder sent through TelegramSender (limits on) to a Bot with
    a `delay` round trip."""
    with tempfile.TemporaryDirectory() as folder:
        storage = await open_storage(f"sqlite:///{folder}/paced.db")
        await seed_chats(storage, chats)
        bot = SlowBot(delay)
        sender = TelegramSender(bot, limits=True)  # type: ignore[arg-type]
        reminders = Reminders(storage, lambda: NOW.replace(tzinfo=dt.UTC), "UTC", sender=sender)
        start = time.perf_counter()
        sent = await reminders.run_due()
        elapsed = time.perf_counter() - start
        await storage.close()
    others = [at for at, chat in bot.accepted if chat != 1]
    busy = [at for at, chat in bot.accepted if chat == 1] or [start]
    assert sent == sum(chats.values()) == len(bot.accepted), (sent, len(bot.accepted))
    return sent / elapsed, len(others) / (max(others) - start), max(busy) - start, reminders.most_in_flight


async def at_telegrams_pace(messages: int) -> None:
    chats = dict.fromkeys(range(2, 2 + messages // 3), 3)  # clinicians with 3 patients each
    print(
        f"sends per second at Telegram's pace (limits on: {OVERALL_PER_SECOND}/s overall, 1/s per chat), "
        f"{sum(chats.values())} reminders in {len(chats)} chats of 3, through a simulated round trip:"
    )
    for delay in (0.0, 0.05, 0.15):
        rate, _, _, most = await paced(chats, delay)
        before = f"before {BEFORE[delay]:.1f}/s, " if delay in BEFORE else ""
        goal = f"goal {OVERALL_PER_SECOND}/s"
        print(f"  {delay * 1000:>3.0f} ms: {before}now {rate:.1f}/s ({goal}; {most} sends in flight at most)")
    _, others, busy, _ = await paced({1: 10} | chats, 0.15)
    print(
        f"  10 due at once in one chat among the {sum(chats.values())} others, 150 ms: before "
        f"{BEFORE['one chat']:.1f}/s for the whole queue; now the other chats {others:.1f}/s, "
        f"and the one chat's 10 done in {busy:.1f} s (its own limit: 1/s)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduled", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paced", type=int, default=300, help="reminders sent at Telegram's pace (0: skip)")
    parser.add_argument("--only-paced", action="store_true", help="only the part at Telegram's pace")
    args = parser.parse_args()
    if args.paced:
        await at_telegrams_pace(args.paced)
    if args.only_paced:
        return
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
