"""Where a steady update's time goes: python-telegram-bot, flow, glue, storage (a sampling profile).

    python tests/benchmarks/profile_bot.py [--rounds 3] [--every 1] [--interval 0.0002]

Replays the dialogues of tests/dialogues/ through the real Application on one warm database (as
bench_bot.py's steady run) and, while an update is inside `Application.process_update`, samples
the event loop thread's stack from another thread. Each sample goes to the layer of the innermost
frame that belongs to one (library frames such as pydantic or json count for the layer that
called them):

- storage: SQLAlchemy, sqlite3 (its C calls show as SQLAlchemy's frames), bot/storage
- flow: flows/, core/, transitions
- PTB: python-telegram-bot, and the offline Bot API it sends through (bot/offline.py)
- glue: the rest of bot/ (service, telegram adapter, reminders' own code, sending limits)

Prints the share of the busy samples per layer (samples with the loop idle in select, waiting for
a disk flush's worker thread or for the machine, are counted apart) and, scaled by the mean CPU
time per update measured without the sampler (a separate run), ms per update; and SQLite's own
execution time per update (timed around each cursor execute). The sampler slows the run; the
shares, not its times, are the result.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bot.offline import SentMessage
from bot.storage import Storage
from tests.benchmarks.bench_bot import DIALOGUES, SteadyHarness, TimedHarness, run_dialogues

LAYERS = (
    ("storage", ("/sqlalchemy/", "/bot/storage/", "/sqlite3/")),
    ("flow", ("/flows/", "/core/", "/transitions/")),
    ("PTB", ("/telegram/", "/bot/offline.py")),
    ("glue", ("/bot/",)),
)


IDLE = "idle (the loop waiting: disk flush, the machine)"


def layer(frame: FrameType | None) -> str:
    if frame is not None and frame.f_code.co_name in ("select", "poll") and "selectors" in frame.f_code.co_filename:
        return IDLE
    while frame is not None:
        path = frame.f_code.co_filename
        for name, markers in LAYERS:
            if any(marker in path for marker in markers):
                return name
        frame = frame.f_back
    return "event loop (asyncio's own)"


class SampledHarness(SteadyHarness):
    inside: ClassVar[bool] = False

    async def process(self, update: dict[str, Any]) -> list[SentMessage]:
        SampledHarness.inside = True
        try:
            return await super().process(update)
        finally:
            SampledHarness.inside = False


class Sampler(threading.Thread):
    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval, self.samples, self.stopped = interval, Counter[str](), False
        self.target = threading.main_thread().ident

    def run(self) -> None:
        while not self.stopped:
            time.sleep(self.interval)
            if SampledHarness.inside:
                frame = sys._current_frames().get(self.target or 0)
                self.samples[layer(frame)] += 1


class SqliteClock:
    """Time spent in the cursor's execute (SQLite itself, plus the driver's thin wrapper)."""

    def __init__(self, storage: Storage) -> None:
        self.total = 0.0
        self._started = 0.0
        engine = storage.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_args: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, *_args: Any) -> None:
        self.total += time.perf_counter() - self._started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every", type=int, default=1, help="every n-th dialogue")
    parser.add_argument("--interval", type=float, default=0.0002, help="seconds between samples")
    args = parser.parse_args()
    dialogues = DIALOGUES[:: args.every]
    import logging

    logging.getLogger("hemadose.telegram").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as folder:
        SteadyHarness.url = f"sqlite:///{folder}/steady.db"
        await run_dialogues(SteadyHarness, dialogues)  # warm: statements compiled, connection open
        assert SteadyHarness.shared is not None
        clock = SqliteClock(SteadyHarness.shared)
        wall, cpu, updates = [], [], 0
        for _ in range(args.rounds):  # unsampled: the update's time
            times, failed = await run_dialogues(SteadyHarness, dialogues)
            assert failed == 0
            wall += times
            cpu += TimedHarness.cpu
            updates += len(times)
        sqlite_ms = clock.total * 1000 / updates
        sys.setswitchinterval(args.interval / 4)
        sampler = Sampler(args.interval)
        sampler.start()
        for _ in range(args.rounds):
            await run_dialogues(SampledHarness, dialogues)
        sampler.stopped = True
        await SteadyHarness.shared.close()
    mean_cpu = statistics.fmean(cpu) * 1000
    total = sum(sampler.samples.values())
    mean_wall = statistics.fmean(wall) * 1000
    print(f"{len(dialogues)} dialogues x {args.rounds} rounds: {updates} updates; mean {mean_wall:.2f} ms wall, "
          f"{mean_cpu:.2f} ms CPU per update (unsampled); {total} samples")  # fmt: skip
    busy = total - sampler.samples[IDLE]
    print(f"  {IDLE}: {sampler.samples[IDLE] / total:.1%} of the samples; the rest, as shares of the CPU time:")
    for name, count in sampler.samples.most_common():
        if name != IDLE:
            print(f"  {name:<28} {count / busy:6.1%}  ~{count / busy * mean_cpu:.2f} ms CPU per update")
    print(f"  of storage, SQLite's cursor execute: {sqlite_ms:.3f} ms per update")


if __name__ == "__main__":
    asyncio.run(main())
