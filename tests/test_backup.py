"""`hemadose backup`: an online copy, private, that the app opens and reads back whole."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.storage import open_storage
from bot.storage.audit_chain import verify
from bot.storage.backup import BackupError, backup_sqlite
from bot.storage.tables import Audit
from flows.replies import AuditRecommendation
from tests.helpers import romiplostim
from tests.test_storage import TODAY, consultation

HEMADOSE = Path(sys.executable).parent / "hemadose"


async def saved(path: Path) -> None:
    """One consultation saved and audited, as the chat does on 'Save'."""
    storage = await open_storage(f"sqlite:///{path}")
    effect = consultation("RX-12", romiplostim())
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        await storage.save_consultation(session, user, effect)
        await storage.audit(session, user, AuditRecommendation("RX-12", effect.request, effect.response))
    await storage.close()


async def record_and_audit(path: Path) -> tuple[Any, list[tuple[Any, ...]], bool]:
    storage = await open_storage(f"sqlite:///{path}")
    async with storage.session() as session:
        user = await storage.user_id(session, "tg:1")
        history = await storage.history(session, user, "RX-12")
        summary = (await storage.summaries(session, user, TODAY))["RX-12"]
        audit = [
            (row.seq, row.patient_label, row.ruleset, row.request, row.response, row.hash)
            for row in await session.scalars(select(Audit).order_by(Audit.id))
        ]
        intact = (await verify(session)).intact
    await storage.close()
    return (history, summary.dose_amount, summary.dose_since), audit, intact


async def test_a_backup_restores_the_same_record_and_audit(tmp_path: Path):
    database, copy = tmp_path / "live.db", tmp_path / "copy.db"
    await saved(database)
    previous = os.umask(0o022)
    try:
        size = backup_sqlite(database, copy)
    finally:
        os.umask(previous)
    assert size == copy.stat().st_size > 0
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".copy.db*"))  # no partial file left beside it
    original, restored = await record_and_audit(database), await record_and_audit(copy)
    assert restored == original
    record, audit, intact = restored
    assert record[1:] == ("4", dt.date(2026, 11, 22))  # the regimen: the new dose from its date
    assert record[0] == (
        "RX-12",
        [
            (dt.date(2026, 11, 22), "recommendation: increase 4 mcg/kg (romiplostim.increase)"),
            (dt.date(2026, 11, 21), "platelets 32 10^9/L"),
            (dt.date(2026, 11, 15), "dose given: romiplostim 3 mcg/kg"),
        ],
    )
    assert (len(audit), audit[0][4]["action"], intact) == (1, "increase", True)


async def test_the_backup_is_taken_while_a_transaction_is_open_and_holds_only_what_was_committed(tmp_path: Path):
    database, copy = tmp_path / "live.db", tmp_path / "copy.db"
    await saved(database)
    storage = await open_storage(f"sqlite:///{database}")
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        effect = consultation("RX-12", romiplostim())
        await storage.audit(session, user, AuditRecommendation("RX-12", effect.request, effect.response))
        backup_sqlite(database, copy)  # the bot's write transaction is open: the copy neither waits nor sees it
    await storage.close()
    reader = sqlite3.connect(copy)
    assert reader.execute("select count(*) from audit").fetchone() == (1,)
    assert reader.execute("pragma integrity_check").fetchone() == ("ok",)
    assert reader.execute("pragma journal_mode").fetchone() == ("delete",)  # one self-contained file
    reader.close()
    live = sqlite3.connect(database)
    assert live.execute("select count(*) from audit").fetchone() == (2,)
    live.close()


async def test_a_backup_replaces_an_older_one_and_never_the_database(tmp_path: Path):
    database, copy = tmp_path / "live.db", tmp_path / "copy.db"
    await saved(database)
    copy.write_text("last week's backup")
    backup_sqlite(database, copy)
    assert copy.read_bytes().startswith(b"SQLite format 3\x00")
    with pytest.raises(BackupError, match="is the database itself"):
        backup_sqlite(database, tmp_path / "." / "live.db")
    with pytest.raises(BackupError, match="there is no database at"):
        backup_sqlite(tmp_path / "none.db", copy)
    assert not (tmp_path / "none.db").exists()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HEMADOSE), *args], capture_output=True, text=True, timeout=60, check=False)


async def test_hemadose_backup_copies_and_the_copy_is_the_same_record(tmp_path: Path):
    database, copy = tmp_path / "live.db", tmp_path / "nightly.db"
    await saved(database)
    done = run("backup", str(copy), "--db", str(database))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"Backed up {database} to {copy} ({copy.stat().st_size} bytes, checked).\n"
    assert await record_and_audit(copy) == await record_and_audit(database)


def test_hemadose_backup_of_postgresql_points_to_pg_dump(tmp_path: Path):
    done = run("backup", str(tmp_path / "x.db"), "--db", "postgresql+asyncpg://hemadose:secret@db/hemadose")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "hemadose backup: the database is postgresql, not SQLite; back it up with pg_dump "
        "(e.g. pg_dump --format=custom --file FILE DBNAME; see the README).\n"
    )
    assert "secret" not in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_hemadose_backup_refuses_the_database_itself_and_a_missing_folder(tmp_path: Path):
    database = tmp_path / "live.db"
    sqlite3.connect(database).close()
    same = run("backup", str(database), "--db", str(database))
    assert (same.returncode, same.stderr) == (
        1,
        f"hemadose backup: {database} is the database itself; choose another file\n",
    )
    nowhere = run("backup", str(tmp_path / "no" / "b.db"), "--db", str(database))
    assert (nowhere.returncode, nowhere.stderr) == (1, f"hemadose backup: the folder {tmp_path}/no does not exist\n")
