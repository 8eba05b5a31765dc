"""Bot benchmark: the dialogues through `Application.process_update`, against the floor of its replies.

    python tests/benchmarks/bench_bot.py [--rounds 3] [--idle 2000] [--quick] [--growth]

Replays every dialogue of tests/dialogues/ through the real python-telegram-bot Application with
SQLite on disk (offline Bot API), timing each update, in three ways:

- steady: one database engine for the whole run, as a running bot has (its statement cache and
  connection stay warm); each dialogue still starts on empty tables. This is the headline figure.
- cold: a fresh engine per dialogue, as the test suite replays them, so each dialogue compiles its
  statements anew (what a bot pays once per statement after a start).
- seeded: as steady, on a database that also holds two other users: one with 10,000 patients, one
  with a patient of 10,000 labs (kept between dialogues; the dialogues' own rows are removed).

Each round also feeds the very same updates to python-telegram-bot alone sending the replies
HemaDose sent (same texts and keyboards, no flow, no database): the floor that our replies cost
before any of our work, and the headline ratio HemaDose / floor (goal <= 2.0); and to a bare echo
bot (one reply per update), the second reference. Rounds interleave all of them, so that a noisy
moment of the machine touches each alike.

Then, on the seeded database, the updates whose cost grew with the record (issue 12's table): the
update that reaches the patient question and a label typed at it for the user with 10,000 patients,
and `/patients`' reply length; picking the patient with 10,000 labs, its `/history`, saving a
consultation for it. The seeding is two real consultations through the bot, then bulk rows
(SQLAlchemy Core executemany into the real schema). `--growth` repeats them at 1 / 100 / 10,000
patients and 10 / 1,000 / 10,000 labs. Last, the memory held per idle conversation (goal <= 4 KiB:
conversations live in the database). Prints a figure / now / goal table. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import itertools
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, Connection, Table, create_engine, insert, select, true, update

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, TypeHandler, filters

from bot.offline import TOKEN, RecordingRequest, SentMessage
from bot.replay import Harness, load, replay
from bot.storage import Storage, open_storage
from bot.storage.audit_chain import GENESIS, HEAD_ID
from bot.storage.tables import Base

DIALOGUES = sorted((Path(__file__).resolve().parents[1] / "dialogues").glob("*.yaml"))
TODAY = dt.date(2026, 11, 22)
MANY_PATIENTS_USER, MANY_LABS_USER = 900_001, 900_002  # Telegram ids no dialogue uses
SEEDED_USERS = (f"tg:{MANY_PATIENTS_USER}", f"tg:{MANY_LABS_USER}")
# Visit 1 of tests/dialogues/flow_followup_romiplostim_increase_saved.yaml: RX-12 saved with its record.
VISIT_1 = (
    "/new", "Romiplostim", "US label", "RX-12", "72", "Adult (18 or over)", "Today", "On treatment", "3",
    "2026-11-01", "2026-11-15", "32", "Yesterday", "✅ Get recommendation", "Save to patient",
)  # fmt: skip
# Each scenario: (step, the figure it is timed as, or "").
MANY_PATIENTS = (
    ("/new", ""),
    ("Romiplostim", ""),
    ("US label", "patient question reached"),
    ("NEW-1", "label typed at the patient question"),
    ("/cancel", ""),
    ("/patients", "/patients"),
)
MANY_LABS = (
    ("/new", ""),
    ("Romiplostim", ""),
    ("US label", ""),
    ("RX-12", "patient picked"),
    ("Keep 72 kg", ""),
    ("Adult (18 or over)", ""),
    ("As saved", ""),
    ("Keep 4 mcg/kg", ""),
    ("Today", ""),
    ("Same as start", ""),
    ("60", ""),
    ("Today", ""),
    ("✅ Get recommendation", ""),
    ("Save to patient", "consultation saved"),
    ("/history RX-12", "/history"),
)


class TimedHarness(Harness):
    """The replay harness, timing each update; keeps the updates and our replies for the floors."""

    timings: ClassVar[list[float]] = []
    cpu: ClassVar[list[float]] = []  # the process's CPU time per update (the machine is shared)
    updates: ClassVar[list[dict[str, Any]]] = []
    replies: ClassVar[list[list[SentMessage]]] = []

    async def process(self, update: dict[str, Any]) -> list[SentMessage]:
        parsed = Update.de_json(update, self.application.bot)
        start, cpu = time.perf_counter(), time.process_time()
        await self.application.process_update(parsed)
        TimedHarness.timings.append(time.perf_counter() - start)
        TimedHarness.cpu.append(time.process_time() - cpu)
        sent = self.request.take()
        TimedHarness.updates.append(update)
        TimedHarness.replies.append(sent)
        return sent


def _goes(table: Table, keep: tuple[str, ...]) -> ColumnElement[bool]:
    """Which rows of `table` a dialogue left: all but those of the `keep` users (through the foreign keys)."""
    if table.name == "users":
        return table.c.external_id.not_in(keep) if keep else true()
    for key in sorted(table.foreign_keys, key=lambda k: k.parent.name):
        parent = key.column.table
        return key.parent.in_(select(key.column).where(_goes(parent, keep)))
    return true()


def clear(connection: Connection, keep: tuple[str, ...] = ()) -> None:
    """Remove what the dialogues wrote (the `keep` users' rows stay); the audit chain's head put back
    on its last remaining entry."""
    tables = Base.metadata.tables
    for table in reversed(Base.metadata.sorted_tables):
        if table.name != "audit_head":
            connection.execute(table.delete().where(_goes(table, keep)))
    audit, head = tables["audit"], tables["audit_head"]
    last = connection.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)).first()
    seq, digest = (last.seq, last.hash) if last is not None else (0, GENESIS)
    connection.execute(update(head).where(head.c.id == HEAD_ID).values(seq=seq, hash=digest))


class SteadyHarness(TimedHarness):
    """One engine for the run (as a running bot); each dialogue starts on emptied tables."""

    url: ClassVar[str] = ""
    keep: ClassVar[tuple[str, ...]] = ()
    shared: ClassVar[Storage | None] = None

    async def open_storage(self) -> Storage:
        cls = type(self)
        if cls.shared is None:
            cls.shared = await open_storage(cls.url)
        if self.storage is None:  # this dialogue's first start, not a restart within it
            async with cls.shared.engine.begin() as connection:
                await connection.run_sync(clear, cls.keep)
        return cls.shared

    async def close_storage(self, storage: Storage) -> None:
        return None  # kept for the next dialogue; closed at the end of the run


class SeededHarness(SteadyHarness):
    """As SteadyHarness, on the seeded database: the seeded users' rows stay."""

    url: ClassVar[str] = ""
    keep: ClassVar[tuple[str, ...]] = SEEDED_USERS
    shared: ClassVar[Storage | None] = None


async def run_dialogues(harness: type[TimedHarness], dialogues: list[Path]) -> tuple[list[float], int]:
    """Every dialogue once; the time of each update, and how many dialogues failed."""
    import bot.replay

    TimedHarness.timings, TimedHarness.cpu, TimedHarness.updates, TimedHarness.replies = [], [], [], []
    bot.replay.Harness = harness  # type: ignore[misc]
    failed = 0
    try:
        for path in dialogues:
            failed += not (await replay(load(path))).passed
    finally:
        bot.replay.Harness = Harness  # type: ignore[misc]
    return TimedHarness.timings, failed


async def bare_bot(
    updates: list[dict[str, Any]], replies: list[list[SentMessage]] | None
) -> tuple[list[float], list[float]]:
    """python-telegram-bot with no flow and no database: it echoes each update (`replies` None), or
    sends, for each update, the replies HemaDose sent to it. The time of each update, and its CPU time."""
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
    timings, cpu = [], []
    for raw in updates:
        parsed = Update.de_json(raw, app.bot)
        start, started_cpu = time.perf_counter(), time.process_time()
        await app.process_update(parsed)
        timings.append(time.perf_counter() - start)
        cpu.append(time.process_time() - started_cpu)
        request.take()
    await app.shutdown()
    return timings, cpu


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


def p99(timings: list[float]) -> float:
    return statistics.quantiles(timings, n=100)[98] * 1000 if len(timings) > 1 else timings[0] * 1000


class Driver:
    """One user's side of a chat: presses the last replies' button whose label starts with a step,
    or types the step; keeps each update's time and replies."""

    def __init__(self, harness: Harness, user: int) -> None:
        self.harness, self.user = harness, user
        self.last: list[SentMessage] = []

    async def step(self, action: str) -> tuple[float, float, list[SentMessage]]:
        """Wall and CPU seconds of the update, and its replies."""
        hits = [(m, b) for m in self.last for row in m.buttons for b in row if b["text"].startswith(action)]
        start, cpu = time.perf_counter(), time.process_time()
        if hits:
            message, button = hits[-1]
            replies = await self.harness.press(self.user, message, button["callback_data"])
        else:
            replies = await self.harness.send(self.user, action)
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        self.last = replies or self.last
        return took, cpu, replies


async def seed(path: Path, patients: int, labs: int) -> float:
    """A database with two users beside the dialogues': one with `patients` patients, one whose
    patient RX-12 has `labs` labs. Each first saves RX-12 through the bot (so every row the bot
    writes is there, as written); the rest is bulk rows. Returns the seconds it took."""
    start = time.perf_counter()
    harness = Harness(f"sqlite:///{path}", TODAY, None)
    await harness.start()
    for user in (MANY_PATIENTS_USER, MANY_LABS_USER):
        driver = Driver(harness, user)
        for action in VISIT_1:
            _took, _cpu, replies = await driver.step(action)
        assert replies, action
        assert replies[-1].text.startswith("Saved to RX-12"), replies
    await harness.stop()
    tables = Base.metadata.tables
    users, patient, regimen, dose, lab = (tables[n] for n in ("users", "patients", "regimens", "doses", "labs"))
    now = dt.datetime.combine(TODAY, dt.time(9))
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        owner = connection.execute(select(users.c.id).where(users.c.external_id == SEEDED_USERS[0])).scalar_one()
        rx12 = connection.execute(
            select(patient.c.id).join(users).where(users.c.external_id == SEEDED_USERS[1], patient.c.label == "RX-12")
        ).scalar_one()
        unknown = {"age_years": None, "child_pugh": None, "baseline_rbc_units_per_12_weeks": None}
        weighed = {"weight_kg": "70", "weight_date": TODAY - dt.timedelta(30), "created_at": now}
        rows = [{"user_id": owner, "label": f"P-{n:05d}", **weighed, **unknown} for n in range(1, patients)]
        if rows:  # (executemany of no rows would be one INSERT of the defaults)
            connection.execute(insert(patient), rows)
        ids = (
            connection.execute(select(patient.c.id).where(patient.c.user_id == owner, patient.c.label.like("P-%")))
            .scalars()
            .all()
        )
        treated = {"drug": "romiplostim", "indication": "itp", "region": "us", "dose_unit": "mcg/kg"}
        since = {"dose_amount": "3", "since": TODAY - dt.timedelta(60), "on_hold": False, "updated_at": now}
        given = {"drug": "romiplostim", "amount": "3", "unit": "mcg/kg", "status": "given", "recorded_at": now}
        count = {"test": "platelets", "unit": "10^9/L", "recorded_at": now}
        for table, rows in (
            (regimen, [{"patient_id": i, **treated, **since} for i in ids]),
            (dose, [{"patient_id": i, "given_on": TODAY - dt.timedelta(7), **given} for i in ids]),
            (lab, [{"patient_id": i, "value": "45", "date": TODAY - dt.timedelta(8), **count} for i in ids]),
            # RX-12 already has one lab (visit 1's); the others one a day before it
            (
                lab,
                [
                    {"patient_id": rx12, "value": str(20 + n % 300), "date": TODAY - dt.timedelta(2 + n), **count}
                    for n in range(labs - 1)
                ],
            ),
        ):
            if rows:
                connection.execute(insert(table), rows)
    engine.dispose()
    return time.perf_counter() - start


class Scenarios:
    """The record-size scenarios on one seeded database, its engine kept across rounds (steady);
    the first round's times are the cold ones."""

    def __init__(self, path: Path, patients: int, labs: int) -> None:
        self.path, self.patients, self.labs = path, patients, labs
        self.harness = Harness(f"sqlite:///{path}", TODAY, None)
        self.times: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self.lengths: list[int] = []  # /patients: characters of each message
        self.history_chars = 0
        self.failures: list[str] = []

    async def round(self, repeat: int) -> None:
        if self.harness.application is None:
            await self.harness.start()
        for user, steps in ((MANY_PATIENTS_USER, MANY_PATIENTS), (MANY_LABS_USER, MANY_LABS)) * repeat:
            driver = Driver(self.harness, user)
            for action, figure in steps:
                took, cpu, replies = await driver.step(action)
                if figure:
                    self.times.setdefault(figure, []).append(took)
                    self.cpu.setdefault(figure, []).append(cpu)
                if figure == "/patients":
                    self.lengths = [len(r.text) for r in replies]
                if figure == "/history":
                    self.history_chars = sum(len(r.text) for r in replies)
                if figure == "consultation saved" and not any(r.text.startswith("Saved to RX-12") for r in replies):
                    self.failures.append(f"save: {[r.text[:80] for r in replies]}")

    def ms(self, figure: str) -> tuple[float, float, float]:
        """Steady (median of the runs after the first; the first if it is the only one), its CPU time,
        and cold (the first run, on a fresh engine), in ms."""
        times, cpu = self.times[figure], self.cpu[figure]
        return statistics.median(times[1:] or times) * 1000, statistics.median(cpu[1:] or cpu) * 1000, times[0] * 1000

    async def close(self) -> None:
        await self.harness.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="times each dialogue is replayed")
    parser.add_argument("--idle", type=int, default=2000, help="idle conversations for the memory figure")
    parser.add_argument("--quick", action="store_true", help="one round, every third dialogue, 300 idle")
    parser.add_argument("--growth", action="store_true", help="the scenarios at 1/100/10,000 patients and labs")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the record-size scenarios per round")
    args = parser.parse_args()
    dialogues = DIALOGUES
    if args.quick:
        args.rounds, args.idle, args.repeat, dialogues = 1, 300, 2, DIALOGUES[::3]

    import logging

    logging.getLogger("hemadose.telegram").setLevel(logging.ERROR)  # the access dialogues' refusals

    timings: dict[str, list[float]] = {name: [] for name in ("cold", "steady", "seeded", "floor", "echo")}
    p99s: dict[str, list[float]] = {name: [] for name in timings}
    cpu: dict[str, list[float]] = {name: [] for name in timings}
    ratios: list[float] = []
    failed = 0
    levels = [(10_000, 10_000)] if not args.growth else [(1, 10), (100, 1_000), (10_000, 10_000)]
    with tempfile.TemporaryDirectory() as folder:
        seeded: list[Scenarios] = []
        for patients, labs in levels:
            path = Path(folder) / f"seeded-{patients}-{labs}.db"
            took = await seed(path, patients, labs)
            print(f"seeded {patients:,} patients / {labs:,} labs in {took:.2f} s")
            seeded.append(Scenarios(path, patients, labs))
        SteadyHarness.url = f"sqlite:///{folder}/steady.db"
        SeededHarness.url = f"sqlite:///{seeded[-1].path}"  # the dialogues beside 10,000 + 10,000 rows
        for _ in range(args.rounds):
            for name, harness in (("cold", TimedHarness), ("steady", SteadyHarness), ("seeded", SeededHarness)):
                times, failures = await run_dialogues(harness, dialogues)
                failed += failures
                timings[name] += times
                cpu[name] += TimedHarness.cpu
                p99s[name].append(p99(times))
                if name == "steady":
                    updates, replies = TimedHarness.updates, TimedHarness.replies
            floor, floor_cpu = await bare_bot(updates, replies)
            echo, echo_cpu = await bare_bot(updates, None)
            for name, times, cpu_times in (("floor", floor, floor_cpu), ("echo", echo, echo_cpu)):
                timings[name] += times
                cpu[name] += cpu_times
                p99s[name].append(p99(times))
            ratios.append(statistics.fmean(timings["steady"][-len(floor) :]) / statistics.fmean(floor))
            for scenarios in seeded:
                await scenarios.round(args.repeat)
        for harness in (SteadyHarness, SeededHarness):
            if harness.shared is not None:
                await harness.shared.close()
        for scenarios in seeded:
            await scenarios.close()
    per_conversation = await idle_memory(args.idle)

    mean = {name: statistics.fmean(times) * 1000 for name, times in timings.items()}
    pooled = {name: p99(times) for name, times in timings.items()}
    print(f"\ndialogues: {len(dialogues)} x {args.rounds} rounds, {len(timings['steady'])} updates per way "
          f"({failed} dialogue runs failed)")  # fmt: skip
    for name, title in (
        ("steady", "HemaDose, steady (one engine for the run)"),
        ("cold", "HemaDose, cold (a fresh engine per dialogue)"),
        ("seeded", "HemaDose, steady, seeded database"),
        ("floor", "PTB sending the same replies (the floor)"),
        ("echo", "bare echo bot (same updates)"),
    ):
        rounds = ", ".join(f"{v:.2f}" for v in p99s[name])
        print(f"  {title:<46} {figures(timings[name])}; p99 by round {rounds}")
    print(f"  HemaDose steady / floor by round: {', '.join(f'{r:.2f}x' for r in ratios)}")
    cpu_ms = {name: statistics.fmean(times) * 1000 for name, times in cpu.items()}
    print(
        "  CPU time per update (this process; less touched by the other processes of a shared machine): "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu_ms.items())
        + f"; steady / floor {cpu_ms['steady'] / cpu_ms['floor']:.2f}x, / echo {cpu_ms['steady'] / cpu_ms['echo']:.2f}x"
    )

    big = seeded[-1]
    rows = [
        (
            "bot update, steady, / PTB sending the same replies",
            f"{mean['steady'] / mean['floor']:.2f}x ({1000 / mean['steady']:,.0f} updates/s; p99 "
            f"{pooled['steady']:.2f} ms steady, {pooled['cold']:.2f} ms cold)",
            "<= 2.0x, p99 <= 2 ms steady",
        ),
        (
            "  same, in CPU time per update",
            f"{cpu_ms['steady'] / cpu_ms['floor']:.2f}x ({cpu_ms['steady']:.2f} ms vs {cpu_ms['floor']:.2f} ms)",
            "<= 2.0x",
        ),
        (
            "  same, / bare echo bot (second reference)",
            f"{mean['steady'] / mean['echo']:.2f}x (cold {mean['cold'] / mean['echo']:.2f}x)",
            "-",
        ),
        (
            "  same, seeded database, / PTB replies",
            f"{mean['seeded'] / mean['floor']:.2f}x (p99 {pooled['seeded']:.2f} ms)",
            "<= 2.0x",
        ),
    ]
    label = {
        "patient question reached": f"update reaching the patient question, {big.patients:,} patients",
        "label typed at the patient question": f"a new label typed at it, {big.patients:,} patients",
        "patient picked": f"picking the patient with {big.labs:,} labs",
        "/history": f"/history of it ({big.history_chars:,} characters)",
        "consultation saved": "saving a consultation for it",
    }
    for figure, title in label.items():
        steady_ms, cpu_one, cold_ms = big.ms(figure)
        rows.append((title, f"{steady_ms:.1f} ms, CPU {cpu_one:.1f} ms (cold {cold_ms:.1f} ms)", "<= 3 ms, flat"))
    steady_ms, _cpu, _cold = big.ms("/patients")
    rows.append(
        (
            f"/patients with {big.patients:,} patients",
            f"{sum(big.lengths):,} characters in {len(big.lengths)} message(s), largest {max(big.lengths):,} "
            f"({steady_ms:.1f} ms)",
            "paged, <= 4,096 characters",
        )
    )
    rows.append(
        (
            "memory per idle conversation",
            f"{per_conversation:,.0f} bytes ({args.idle} conversations)",
            "<= 4,096 bytes",
        )
    )
    width = max(len(r[0]) for r in rows)
    now_width = max(len(r[1]) for r in rows)
    print(f"\n| {'figure':<{width}} | {'now':<{now_width}} | goal |")
    print(f"|{'-' * (width + 2)}|{'-' * (now_width + 2)}|------|")
    for figure, now, goal in rows:
        print(f"| {figure:<{width}} | {now:<{now_width}} | {goal} |")
    if args.growth:
        print("\ngrowth (steady ms per update, wall / CPU; goal: each step flat within 1.5x):")
        for figure in label:
            values = [s.ms(figure)[0] for s in seeded]
            cpu_values = [s.ms(figure)[1] for s in seeded]
            sizes = [s.patients if figure.startswith(("patient q", "label")) else s.labs for s in seeded]
            steps = "  ".join(
                f"{n:>6,}: {v:6.1f} / {c:5.1f}" for n, v, c in zip(sizes, values, cpu_values, strict=True)
            )
            worst = max(b / a for a, b in itertools.pairwise(cpu_values))
            print(f"  {figure:<36} {steps}   largest step (CPU) {worst:.1f}x")
    for scenarios in seeded:
        for failure in scenarios.failures:
            print(f"scenario did not go as scripted ({scenarios.patients}/{scenarios.labs}): {failure}")


if __name__ == "__main__":
    asyncio.run(main())
