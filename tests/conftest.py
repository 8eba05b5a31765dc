"""Fixtures shared by the test modules: the database URL a test runs on (tests/databases.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.databases import DATABASES, PostgresDatabases, sqlite_url


@pytest.fixture(scope="session")
def _postgres() -> Iterator[PostgresDatabases | None]:
    yield DATABASES
    if DATABASES is not None:
        DATABASES.close()


@pytest.fixture(autouse=True)
def _drop_databases(_postgres: PostgresDatabases | None) -> Iterator[None]:
    """Databases a test made through tests.databases.fresh_url are dropped after it."""
    yield
    if _postgres is not None:
        _postgres.drop_made()


@pytest.fixture
def new_db_url(tmp_path: Path, _postgres: PostgresDatabases | None) -> Callable[[str], str]:
    """Make a fresh, empty database and give its URL: a file in tmp_path (named), or a PostgreSQL database
    of its own when HEMADOSE_TEST_DB_URL is set. Dropped after the test."""

    def new(name: str = "test") -> str:
        return _postgres.new() if _postgres is not None else sqlite_url(tmp_path, name)

    return new


@pytest.fixture
def db_url(new_db_url: Callable[[str], str]) -> str:
    """One fresh database's URL (see new_db_url)."""
    return new_db_url("test")
