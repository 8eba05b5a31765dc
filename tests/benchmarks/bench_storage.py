"""Storage executor benchmark: CPU time of a SELECT and of a transaction's own cost, on SQLite on disk.

    python tests/benchmarks/bench_storage.py [--source DIR]

Through `Storage.session()` as the bot uses it (`async with storage.session() as s, s.begin()`),
the best of 5 runs of 1,000 transactions each: with one SELECT, and with ten. The difference
gives a statement's cost, the rest the transaction's own (session, connection, BEGIN, COMMIT).
`--source DIR` runs another checkout's code (e.g. a `git archive` of an older commit) with this
virtual environment, for a before/after. CPU time (the machine may be shared). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast


async def main(source: Path) -> None:
    sys.path.insert(0, str(source))
    from sqlalchemy import Table, select

    from bot.storage import open_storage
    from bot.storage.tables import User

    users = cast(Table, User.__table__)
    query = select(users.c.id).where(users.c.external_id == "tg:0")
    with tempfile.TemporaryDirectory() as folder:
        storage = await open_storage(f"sqlite:///{folder}/bench.db")

        async def transaction(statements: int) -> None:
            session: Any
            async with storage.session() as session, session.begin():
                for _ in range(statements):
                    await session.scalar(query)

        async def best(run: Callable[[], Awaitable[None]]) -> float:
            for _ in range(300):
                await run()
            runs = []
            for _ in range(5):
                started = time.process_time()
                for _ in range(1000):
                    await run()
                runs.append((time.process_time() - started) / 1000 * 1e6)
            return min(runs)

        one = await best(lambda: transaction(1))
        ten = await best(lambda: transaction(10))
        await storage.close()
    statement = (ten - one) / 9
    print(f"code: {source}")
    print(f"  transaction with 1 SELECT: {one:.0f} µs CPU; with 10: {ten:.0f} µs")
    print(f"  a SELECT: {statement:.0f} µs; a transaction's own cost: {one - statement:.0f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parents[2])
    asyncio.run(main(parser.parse_args().source.resolve()))
