"""SQLite run synchronously in the event loop: no greenlet hop, no thread, per statement.

Why: SQLite is in the process. A statement on a local file takes a few microseconds; aiosqlite's
thread hops (about 100 µs each) and then SQLAlchemy's greenlet bridge (about 0.25 ms per
transaction) cost far more than the work.

How: a plain synchronous engine (pysqlite) and SQLAlchemy's own ORM `Session`, wrapped in
`InLoopSession`, whose coroutines call the session at once and never suspend on a statement; and
`InLoopEngine`, the same for `engine.begin()`. Both expose the subset of `AsyncSession` /
`AsyncEngine` the code uses (bot.storage.session), so the queries are written once and
PostgreSQL runs them unchanged on the async engine.

What it costs: a statement holds the event loop while it runs. With WAL and synchronous=NORMAL a
commit does not wait for the disk (a checkpoint, now and then, does), so that is microseconds. A
commit that wrote a clinical record (anything but the chat-state tables, see `durable_write`) is
then flushed to the disk before it returns, as synchronous=FULL would (SQLite refuses to change
that setting inside a transaction, and only at the commit is it known what the transaction
wrote): one fdatasync of the WAL file, a few milliseconds, on recommendations, reminder answers
and delivery claims only, waited for in a worker thread (the one thing that leaves the loop).
There is one connection, and a transaction holds it (an asyncio.Lock) from its first statement to
its end, the disk flush included: so that one transaction can never wait on SQLite's file lock
(which would hold the loop), a second transaction waits for the first, asynchronously. (Another
process holding the file's write lock is waited for as before: sqlite3's busy timeout, 5 s.)
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from functools import lru_cache
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar, cast, overload

from sqlalchemy import Connection, CursorResult, Engine, Result, ScalarResult, create_engine, event, exc
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Executable
from sqlalchemy.sql.selectable import TypedReturnsRows
from sqlalchemy.util import immutabledict
from sqlalchemy.util.typing import TupleAny, TypeVarTuple, Unpack

from bot.storage.files import sync_file
from bot.storage.session import DbEngine, DbSession

# Tables whose writes may be lost to a power cut (the chat's place in a conversation, the user's
# row and time zone, and the ids of the updates handled): a commit that wrote only these stays
# synchronous=NORMAL. An update id lost this way goes with the chat state it produced, so the update
# redelivered is handled again from where the chat was. Every other table (the patients' records, the
# audit, reminders and their deliveries) is flushed at commit.
CHAT_STATE_TABLES = frozenset({"conversations", "users", "processed_updates"})
_WRITTEN_TABLE = re.compile(
    r'\s*(?:INSERT|REPLACE|UPDATE|DELETE)\b(?:\s+OR\s+\w+)?(?:\s+INTO|\s+FROM)?\s+"?(\w+)', re.IGNORECASE
)
# As AsyncSession: rows are read before the call returns (a result outlives its transaction).
_BUFFERED = immutabledict({"prebuffer_rows": True})
WAIT_FOR_CONNECTION = 30.0  # seconds a transaction waits for the connection (SQLAlchemy's pool_timeout)

_T = TypeVar("_T")
_O = TypeVar("_O")
_P = ParamSpec("_P")
_Ts = TypeVarTuple("_Ts")


@lru_cache(maxsize=1024)
def durable_write(sql: str) -> bool:
    """Whether this statement writes a table whose commit must reach the disk (cached: the
    statements are SQLAlchemy's compiled strings, the same few each time)."""
    written = _WRITTEN_TABLE.match(sql)
    return written is not None and written.group(1).lower() not in CHAT_STATE_TABLES


def session_factory(engine: DbEngine) -> Callable[[], DbSession]:
    """`Storage.session`: an InLoopSession on SQLite in the loop, else an AsyncSession (both with
    expire_on_commit=False). SQLAlchemy's asyncio extension is imported only for the latter."""
    if isinstance(engine, InLoopEngine):
        return engine.session
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

    return async_sessionmaker(cast(AsyncEngine, engine), expire_on_commit=False)


class InLoopEngine:
    """The SQLite file `database` behind one connection, its transactions taken in turn."""

    def __init__(self, database: str, **options: Any) -> None:
        self.database = database

        def connect() -> sqlite3.Connection:
            # check_same_thread off: SQLAlchemy may close the connection from its garbage
            # collector, outside the loop; every statement itself runs in the loop's thread.
            return sqlite3.connect(database, check_same_thread=False)

        # One connection (StaticPool): the lock below gives it to one transaction at a time.
        self.sync_engine: Engine = create_engine("sqlite://", creator=connect, poolclass=StaticPool, **options)
        self.durable = False  # the transaction now running wrote a table outside CHAT_STATE_TABLES
        self._turn = asyncio.Lock()
        event.listen(self.sync_engine, "before_cursor_execute", self._note_write)

    def _note_write(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if durable_write(statement):
            self.durable = True

    @property
    def dialect(self) -> Any:
        return self.sync_engine.dialect

    @property
    def url(self) -> Any:
        return self.sync_engine.url

    def session(self) -> InLoopSession:
        """A new session (as `async_sessionmaker(engine, expire_on_commit=False)()`)."""
        return InLoopSession(self)

    async def acquire(self) -> None:
        """This transaction's turn on the connection; waits (asynchronously) for the one before."""
        if not self._turn.locked():
            await self._turn.acquire()  # free: returns without suspending
            return
        try:
            async with asyncio.timeout(WAIT_FOR_CONNECTION):
                await self._turn.acquire()
        except TimeoutError:
            raise exc.TimeoutError(f"no turn on the SQLite connection within {WAIT_FOR_CONNECTION:g} s") from None

    def release(self) -> None:
        self.durable = False
        self._turn.release()

    async def committed(self) -> None:
        """After a commit: the disk flush if the transaction wrote a clinical table."""
        if not self.durable:
            return
        self.durable = False
        # The flush waits for the disk (milliseconds), so it runs in a worker thread: the loop
        # serves other chats meanwhile, and the connection stays this transaction's until the
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
        if self.database in ("", ":memory:") or self.database.startswith("file:"):
            return
        wal = f"{self.database}-wal"
        try:
            sync_file(wal)
        except FileNotFoundError:  # not in WAL mode: the commit went to the database file
            sync_file(self.database)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[InLoopConnection]:
        """As `AsyncEngine.begin()`: a connection in a transaction, committed (and flushed if
        durable) at the end of the block, rolled back on an error."""
        await self.acquire()
        try:
            with self.sync_engine.begin() as connection:
                yield InLoopConnection(connection)
            await self.committed()
        finally:
            self.release()

    async def dispose(self) -> None:
        self.sync_engine.dispose()


class InLoopConnection:
    """`AsyncConnection`'s interface over a synchronous `Connection` in a transaction."""

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection

    @overload
    async def execute(
        self, statement: TypedReturnsRows[Unpack[_Ts]], parameters: Any = None
    ) -> CursorResult[Unpack[_Ts]]: ...
    @overload
    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Unpack[TupleAny]]: ...
    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Unpack[TupleAny]]:
        return self.sync_connection.execute(statement, parameters, execution_options=_BUFFERED)

    @overload
    async def scalar(self, statement: TypedReturnsRows[_T], parameters: Any = None) -> _T | None: ...
    @overload
    async def scalar(self, statement: Executable, parameters: Any = None) -> Any: ...
    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        return self.sync_connection.scalar(statement, parameters, execution_options=_BUFFERED)

    @overload
    async def scalars(self, statement: TypedReturnsRows[_T], parameters: Any = None) -> ScalarResult[_T]: ...
    @overload
    async def scalars(self, statement: Executable, parameters: Any = None) -> ScalarResult[Any]: ...
    async def scalars(self, statement: Executable, parameters: Any = None) -> ScalarResult[Any]:
        return self.sync_connection.execute(statement, parameters, execution_options=_BUFFERED).scalars()

    async def run_sync(self, fn: Callable[Concatenate[Connection, _P], _T], *arg: _P.args, **kw: _P.kwargs) -> _T:
        return fn(self.sync_connection, *arg, **kw)


class InLoopSession:
    """`AsyncSession`'s interface (the part bot.storage.session names) over SQLAlchemy's ORM
    `Session`, called directly: no greenlet, no thread. The session holds the engine's turn from
    its first statement to the end of that transaction (commit, rollback or close)."""

    def __init__(self, engine: InLoopEngine) -> None:
        self.engine = engine
        self.sync_session = Session(engine.sync_engine, expire_on_commit=False)
        self._holding = False

    async def _hold(self) -> None:
        if not self._holding:
            await self.engine.acquire()
            self._holding = True

    def _let_go(self) -> None:
        if self._holding:
            self._holding = False
            self.engine.release()

    @overload
    async def execute(self, statement: TypedReturnsRows[Unpack[_Ts]], params: Any = None) -> Result[Unpack[_Ts]]: ...
    @overload
    async def execute(self, statement: Executable, params: Any = None) -> Result[Unpack[TupleAny]]: ...
    async def execute(self, statement: Executable, params: Any = None) -> Result[Unpack[TupleAny]]:
        if not self._holding:
            await self._hold()
        return self.sync_session.execute(statement, params, execution_options=_BUFFERED)

    @overload
    async def scalar(self, statement: TypedReturnsRows[_T], params: Any = None) -> _T | None: ...
    @overload
    async def scalar(self, statement: Executable, params: Any = None) -> Any: ...
    async def scalar(self, statement: Executable, params: Any = None) -> Any:
        if not self._holding:
            await self._hold()
        return self.sync_session.scalar(statement, params, execution_options=_BUFFERED)

    @overload
    async def scalars(self, statement: TypedReturnsRows[_T], params: Any = None) -> ScalarResult[_T]: ...
    @overload
    async def scalars(self, statement: Executable, params: Any = None) -> ScalarResult[Any]: ...
    async def scalars(self, statement: Executable, params: Any = None) -> ScalarResult[Any]:
        if not self._holding:
            await self._hold()
        return self.sync_session.execute(statement, params, execution_options=_BUFFERED).scalars()

    async def get(self, entity: type[_O], ident: Any) -> _O | None:
        await self._hold()
        return self.sync_session.get(entity, ident)

    def add(self, instance: object) -> None:
        self.sync_session.add(instance)

    def add_all(self, instances: Iterable[object]) -> None:
        self.sync_session.add_all(instances)

    async def flush(self) -> None:
        await self._hold()
        self.sync_session.flush()

    async def run_sync(self, fn: Callable[Concatenate[Session, _P], _T], *arg: _P.args, **kw: _P.kwargs) -> _T:
        await self._hold()
        return fn(self.sync_session, *arg, **kw)

    async def commit(self) -> None:
        """Commit, then (if it wrote a clinical table) flush it to the disk; then the next
        transaction's turn. A failed commit keeps the turn until rollback or close."""
        await self._hold()
        self.sync_session.commit()
        try:
            await self.engine.committed()
        finally:
            self._let_go()

    async def rollback(self) -> None:
        try:
            self.sync_session.rollback()
        finally:
            self._let_go()

    async def close(self) -> None:
        try:
            self.sync_session.close()
        finally:
            self._let_go()

    def get_bind(self) -> Engine:
        return self.engine.sync_engine

    def begin(self) -> _Transaction:
        """As `AsyncSession.begin()`: committed at the end of the block, rolled back on an error."""
        return _Transaction(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        await self.close()


class _Transaction:
    def __init__(self, session: InLoopSession) -> None:
        self._session = session

    async def __aenter__(self) -> InLoopSession:
        await self._session._hold()
        self._session.sync_session.begin()
        return self._session

    async def __aexit__(
        self, type_: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if type_ is None:
            await self._session.commit()
        else:
            await self._session.rollback()
