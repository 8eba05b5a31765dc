"""SQLite for SQLAlchemy's async engine, run in the event loop's own thread.

Why: aiosqlite runs each connection in a thread of its own, and every cursor call is a round trip
to it (about 100 µs on this machine, four per statement). A SQLite statement on a local file takes
a few microseconds, so the hops cost far more than the work: one chat update spent about 2.7 ms
in the database, most of it waiting for the other thread.

How: SQLAlchemy's own aiosqlite dialect, given (through its public `async_creator` hook) a
connection with aiosqlite's interface whose coroutines run `sqlite3` at once and never suspend.
SQLAlchemy's greenlet bridge awaits each one; nothing passes through another thread.

What it costs: a statement holds the event loop while it runs. With WAL and synchronous=NORMAL a
commit does not wait for the disk (a checkpoint, now and then, does), so that is microseconds. A
commit that wrote a clinical record (anything but the chat-state tables, see `durable_write`) is
then flushed to the disk before it returns, as synchronous=FULL would (SQLite refuses to change
that setting inside a transaction, and only at the commit is it known what the transaction
wrote): one fdatasync of the WAL file, a few milliseconds, on recommendations, reminder answers
and delivery claims only, waited for in a worker thread (the one thing that leaves the loop). So
that one transaction can never wait on SQLite's file lock (which would hold the loop), the engine
keeps a single connection: a second transaction waits for the pool, asynchronously.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from bot.storage.files import sync_file

# Tables whose writes may be lost to a power cut (the chat's place in a conversation, the user's
# row and time zone): a commit that wrote only these stays synchronous=NORMAL. Every other table
# (the patients' records, the audit, reminders and their deliveries) is flushed at commit.
CHAT_STATE_TABLES = frozenset({"conversations", "users"})
_WRITTEN_TABLE = re.compile(
    r'\s*(?:INSERT|REPLACE|UPDATE|DELETE)\b(?:\s+OR\s+\w+)?(?:\s+INTO|\s+FROM)?\s+"?(\w+)', re.IGNORECASE
)


@lru_cache(maxsize=1024)
def durable_write(sql: str) -> bool:
    """Whether this statement writes a table whose commit must reach the disk (cached: the
    statements are SQLAlchemy's compiled strings, the same few each time)."""
    written = _WRITTEN_TABLE.match(sql)
    return written is not None and written.group(1).lower() not in CHAT_STATE_TABLES


class InLoopCursor:
    """aiosqlite's cursor interface over a `sqlite3.Cursor`."""

    def __init__(self, cursor: sqlite3.Cursor, connection: InLoopConnection) -> None:
        self._cursor = cursor
        self._connection = connection

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> Self:
        if durable_write(sql):
            self._connection.durable = True
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any] | dict[str, Any]]) -> Self:
        if durable_write(sql):
            self._connection.durable = True
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    async def close(self) -> None:
        self._cursor.close()


class InLoopConnection:
    """aiosqlite's connection interface over a `sqlite3.Connection` (as SQLAlchemy's adapter uses it)."""

    def __init__(self, database: str) -> None:
        # check_same_thread off: SQLAlchemy may close a pooled connection from its garbage
        # collector, outside the loop; every statement itself runs in the loop's thread.
        self._connection: sqlite3.Connection | None = sqlite3.connect(database, check_same_thread=False)
        self._database = database
        self.durable = False  # this transaction wrote a table outside CHAT_STATE_TABLES

    @property
    def _live(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self._live.isolation_level

    def cursor(self) -> InLoopCursor:
        return InLoopCursor(self._live.cursor(), self)

    async def create_function(self, name: str, narg: int, func: Callable[..., Any], **options: Any) -> None:
        self._live.create_function(name, narg, func, **options)

    async def commit(self) -> None:
        self._live.commit()
        if self.durable:
            self.durable = False
            # The flush waits for the disk (milliseconds), so it runs in a worker thread: the loop
            # serves other chats meanwhile, and this connection stays checked out until the
            # commit is durable. A cancel arriving meanwhile waits for it (the commit is done).
            flushed = asyncio.ensure_future(asyncio.to_thread(self.flush))
            try:
                await asyncio.shield(flushed)
            except asyncio.CancelledError:
                await flushed
                raise

    def flush(self) -> None:
        """What synchronous=FULL does at a WAL commit: the WAL file's frames reach the disk (the
        database file itself, when it is not in WAL mode). Nothing to do in memory."""
        if self._database in ("", ":memory:") or self._database.startswith("file:"):
            return
        wal = f"{self._database}-wal"
        try:
            sync_file(wal)
        except FileNotFoundError:  # not in WAL mode: the commit went to the database file
            sync_file(self._database)

    async def rollback(self) -> None:
        self.durable = False
        self._live.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def create_inloop_engine(database: str, **options: Any) -> AsyncEngine:
    """An async engine on the SQLite file `database`, with one connection run in the event loop."""

    async def connect() -> InLoopConnection:
        return InLoopConnection(database)

    return create_async_engine(
        "sqlite+aiosqlite://",
        async_creator=connect,
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1,
        max_overflow=0,
        **options,
    )
