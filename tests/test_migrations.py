"""The Alembic migrations build exactly the schema the SQLAlchemy tables describe (no drift)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from bot.storage.repository import MIGRATIONS
from bot.storage.tables import Base


def test_migrations_at_head_match_the_tables(tmp_path: Path) -> None:
    """A fresh database upgraded to head differs in nothing from `Base.metadata`."""
    engine = create_engine(f"sqlite:///{tmp_path / 'drift.sqlite'}")
    try:
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
