"""The long fuzz of the chat service (issue 10): a seeded random walk of many users, not run in CI.

    python tests/benchmarks/fuzz_chat.py [MESSAGES] [--seed N] [--users N] [--minutes M]

Drives `ChatService.handle` on a SQLite file like tests/test_fuzz_chat.py (the same inputs and
invariants, `Harness`), but counts instead of stopping: messages, unhandled exceptions, broken
invariants, replies over 4,096 characters, the longest reply, the conversation states visited,
restarts, reminder messages and the time. --minutes stops early (the count reached is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.test_fuzz_chat import Harness, forged, texts  # noqa: E402


async def walk(messages: int, seed: int, users: int, minutes: float) -> int:
    rng = random.Random(seed)
    prefixes = [f"{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(users)]
    people = {f"tg:{1000 + i}": prefix for i, prefix in enumerate(prefixes)}
    exceptions: Counter[str] = Counter()
    first: dict[str, str] = {}
    states: Counter[str] = Counter()
    started = time.monotonic()
    report = 10_000
    with tempfile.TemporaryDirectory(prefix="fuzz-chat-") as folder:
        harness = Harness(Path(folder), people, strict=False)
        await harness.open()

        async def send(user: str, text: str | None = None, button: str | None = None) -> None:
            try:
                await harness.send(user, text, button)
            except Exception as error:  # counted, the walk goes on (each update is its own transaction)
                harness.counts["messages"] += 1
                name = f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
                exceptions[name] += 1
                first.setdefault(
                    name, f"user {user} text={text!r:.200} button={button!r:.200}\n{traceback.format_exc()}"
                )

        while harness.counts["messages"] < messages:
            if minutes and time.monotonic() - started > minutes * 60:
                break
            user = rng.choice(list(people))
            others = [f"{p}-{n}" for u, p in people.items() if u != user for n in (1, 2, 3)]
            roll = rng.random()
            shown = harness.buttons(user)
            if roll < 0.35 and shown:
                await send(user, None, rng.choice(shown)[1])
            elif roll < 0.45 and shown:
                await send(user, rng.choice(shown)[0])
            elif roll < 0.75:
                await send(user, texts(rng, others))
            elif roll < 0.83:
                await send(user, None, forged(rng, others))
            elif roll < 0.88 and harness.seen_data:
                await send(user, None, rng.choice(list(harness.seen_data)))
            elif roll < 0.93:
                await send(user, f"/history {people[user]}-{rng.randint(1, 3)}")
            elif roll < 0.95:
                drug = rng.choice(["romiplostim", "luspatercept"])
                try:
                    if rng.random() < 0.3:
                        await harness.follow_up(user, rng.randint(1, 3))
                    else:
                        await harness.consult(user, rng.randint(1, 3), remind=rng.random() < 0.5, drug=drug)
                except Exception as error:
                    exceptions[f"{type(error).__name__} (in a scripted consultation)"] += 1
            elif roll < 0.955:
                await harness.restart()
            elif roll < 0.97:
                harness.now += dt.timedelta(hours=rng.choice([1, 6, 24, 72]))
                try:
                    await harness.run_reminders()
                except Exception as error:
                    exceptions[f"{type(error).__name__} (in the reminder loop)"] += 1
            else:
                await send(user, "/patients")
            states[harness.state_of(user)] += 1
            if harness.counts["messages"] >= report:
                print(f"  {harness.counts['messages']} messages, {time.monotonic() - started:.0f} s", flush=True)
                report += 10_000
        await harness.close()
    elapsed = time.monotonic() - started
    counts = harness.counts
    print(f"messages: {counts['messages']} (seed {seed}, {users} users)")
    print(f"unhandled exceptions: {sum(exceptions.values())}")
    for name, number in exceptions.most_common():
        print(f"  {number} × {name}")
    print(f"broken invariants: {counts['invariant broken']}")
    for problem in harness.violations[:5]:
        print(f"  {problem[:300]}")
    print(f"replies over 4,096 characters: {counts['replies over 4096']} (longest reply: {harness.max_reply})")
    print(f"known defects skipped: {sum(v for k, v in counts.items() if k.startswith('skipped'))}")
    print(f"restarts: {counts['restarts']}; reminder messages sent: {counts['reminders sent']}")
    print(f"states visited ({len(states)}): " + ", ".join(f"{s} {n}" for s, n in states.most_common()))
    print(f"time: {elapsed:.0f} s ({counts['messages'] / elapsed:.0f} messages/s)")
    for name, where in list(first.items())[:5]:
        print(f"\nfirst {name}\n{where}")
    return 1 if exceptions or counts["invariant broken"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("messages", type=int, nargs="?", default=100_000)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--minutes", type=float, default=0)
    args = parser.parse_args()
    return asyncio.run(walk(args.messages, args.seed, args.users, args.minutes))


if __name__ == "__main__":
    sys.exit(main())
