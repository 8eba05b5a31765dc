"""The database the storage, reminder and dialogue tests run on: SQLite by default, PostgreSQL when
HEMADOSE_TEST_DB_URL names one (CI runs those suites on both; .ci/postgres.sh starts a throwaway cluster).

On PostgreSQL each test gets a database of its own, copied from a template migrated once per run
(CREATE DATABASE ... TEMPLATE: about as fast as a fresh SQLite file, and no test sees another's rows).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

ENV = "HEMADOSE_TEST_DB_URL"
SERVER_URL = os.environ.get(ENV, "")
ON_POSTGRES = SERVER_URL.startswith("postgresql")
# A test of SQLite's own behaviour (the in-loop driver, WAL, file modes, backup, a killed process).
sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason=f"SQLite-specific ({ENV} names a PostgreSQL server)")
T = TypeVar("T")


def _in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end on a loop of its own (a fixture may be set up inside a running loop)."""
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as error:  # re-raised in the caller
            failure.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def _with_database(name: str) -> str:
    return make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)


async def _admin(*statements: str) -> None:
    engine = create_async_engine(SERVER_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


class PostgresDatabases:
    """Databases made for this run (names carry the pid, so two runs can share one server)."""

    def __init__(self) -> None:
        self.prefix = f"hdt_{os.getpid()}"
        self.template = ""
        self.made: list[str] = []

    def _ensure_template(self) -> None:
        if self.template:
            return
        from bot.storage import open_storage

        name = f"{self.prefix}_template"

        async def build() -> None:
            await _admin(f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}")
            storage = await open_storage(_with_database(name))  # migrated to head
            await storage.close()

        _in_thread(build)
        self.template = name

    def new(self, *, empty: bool = False) -> str:
        """A database of its own: migrated (from the template), or `empty` (no schema at all)."""
        name = f"{self.prefix}_{uuid.uuid4().hex[:12]}"
        if empty:
            _in_thread(lambda: _admin(f"CREATE DATABASE {name}"))
        else:
            self._ensure_template()
            _in_thread(lambda: _admin(f"CREATE DATABASE {name} TEMPLATE {self.template}"))
        self.made.append(name)
        return _with_database(name)

    def drop_made(self) -> None:
        names, self.made = self.made, []
        if names:
            _in_thread(lambda: _admin(*(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" for name in names)))

    def close(self) -> None:
        self.drop_made()
        if self.template:
            _in_thread(lambda: _admin(f"DROP DATABASE IF EXISTS {self.template}"))


def sqlite_url(folder: Path, name: str) -> str:
    return f"sqlite:///{folder}/{name}.db"


# The run's PostgreSQL databases (None on SQLite); tests/conftest.py drops what each test made.
DATABASES = PostgresDatabases() if ON_POSTGRES else None


def fresh_url(folder: Path, name: str = "test") -> str:
    """A fresh database's URL, for helpers that are not fixtures: a file in `folder`, or a PostgreSQL
    database of its own when HEMADOSE_TEST_DB_URL is set (dropped after the test)."""
    return DATABASES.new() if DATABASES is not None else sqlite_url(folder, name)
