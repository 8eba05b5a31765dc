"""The schema brought to the newest migration, importing Alembic only when there is one to run.

Why: Alembic costs about 95 ms of imports, paid on every start of `hemadose chat` and `run` although
the schema is nearly always at head already. One cheap query says whether it is; only then is
Alembic loaded. `HEAD_REVISION` is written out here so that the check needs no Alembic at all;
tests/test_startup.py asserts it equals Alembic's head, so a new migration cannot forget it.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, text

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD_REVISION = "0009"  # the newest file of migrations/versions (tests/test_startup.py checks it)


def schema_revisions(connection: Connection) -> list[str]:
    """The revisions the database is stamped at (none for a database Alembic has not touched)."""
    if not connection.dialect.has_table(connection, "alembic_version"):
        return []
    return [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]


# The PostgreSQL advisory lock held while the schema is checked and migrated ('Hema').
MIGRATION_LOCK = 0x48656D61


def upgrade_to_head(connection: Connection) -> None:
    """Run the migrations the database lacks, on `connection`; nothing at all (no Alembic) at head."""
    if connection.dialect.name == "postgresql":
        # Replicas starting at once on a new database: one migrates, the others wait here (the lock is
        # the transaction's) and then find the schema at head. Without it all but one failed.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    if schema_revisions(connection) == [HEAD_REVISION]:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
