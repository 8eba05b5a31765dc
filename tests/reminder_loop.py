"""The reminder delivery loop as a process of its own, for tests/test_kill.py to `kill -9`.

    python tests/reminder_loop.py DB NOW SENDS [--until-idle] [--batch N] [--pause SECONDS] [--lease SECONDS]
                                  [--go FILE]

Opens the storage at DB (a SQLite path), builds `bot.reminders.Reminders` with the clock fixed at
NOW (ISO, UTC) and a sender that appends each message to SENDS as one JSON line and fsyncs it
before returning (so every line in SENDS was handed over before the process died), and runs
`run_due` in a loop. --until-idle stops once a run has nothing to send (it first waits out the
lease of the rows a killed loop held). The clock stands still, so leases run on the wall clock
(--lease, short: a killed loop's rows are taken over soon). Each line also names the process.
--go FILE waits for FILE to exist before the first run (two loops started together).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.reminders import Reminders  # noqa: E402
from bot.storage import open_storage  # noqa: E402


async def loop(
    db: str, now: dt.datetime, sends: Path, until_idle: bool, batch: int, pause: float, lease: float, go: Path | None
) -> None:
    storage = await open_storage(f"sqlite:///{db}")
    descriptor = os.open(sends, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def sender(chat: str, text: str, buttons: Any, /) -> int:
        sent = {"chat": chat, "text": text, "buttons": buttons, "pid": os.getpid()}
        line = json.dumps(sent, ensure_ascii=False) + "\n"
        os.write(descriptor, line.encode())
        os.fsync(descriptor)
        await asyncio.sleep(pause)  # a slow network: the kill lands between sends as well as within
        return os.fstat(descriptor).st_size

    def wall() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    held = dt.timedelta(seconds=lease)
    reminders = Reminders(storage, lambda: now, "UTC", sender=sender, batch=batch, lease=held, lease_clock=wall)
    print("ready", flush=True)
    while go is not None and not go.exists():
        await asyncio.sleep(0.005)
    if until_idle:
        await asyncio.sleep(lease)
    try:
        while True:
            delivered = await reminders.run_due()
            if until_idle and not delivered:
                return
            await asyncio.sleep(0.01)
    finally:
        os.close(descriptor)
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("now", type=dt.datetime.fromisoformat)
    parser.add_argument("sends", type=Path)
    parser.add_argument("--until-idle", action="store_true")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.005)
    parser.add_argument("--lease", type=float, default=0.3)
    parser.add_argument("--go", type=Path)
    args = parser.parse_args()
    now = args.now if args.now.tzinfo else args.now.replace(tzinfo=dt.UTC)
    asyncio.run(loop(args.db, now, args.sends, args.until_idle, args.batch, args.pause, args.lease, args.go))


if __name__ == "__main__":
    main()
