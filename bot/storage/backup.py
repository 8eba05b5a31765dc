"""An online copy of the SQLite database (`hemadose backup FILE`), safe while the bot runs.

SQLite's backup API copies every page inside one read transaction: in WAL mode writers go on
meanwhile, and the copy is the database as of one commit (never half a transaction). The copy is
written to a private (0600) temporary file beside FILE, checked (quick_check), flushed, and only
then renamed to FILE: an old backup at FILE is replaced whole or not at all.
PostgreSQL is backed up with its own tool, pg_dump (README).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from bot.storage.files import create_private, sync_file


class BackupError(Exception):
    """Why the copy was not made, in one line for the operator."""


def backup_sqlite(source: Path, target: Path) -> int:
    """Copy the database file `source` to `target`; the copy's size in bytes."""
    source, target = source.expanduser(), target.expanduser()
    if not source.is_file():
        raise BackupError(f"there is no database at {source}")
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist")
    live = {source.resolve(), *(source.resolve().with_name(source.name + tail) for tail in ("-wal", "-shm"))}
    if target.resolve() in live:
        raise BackupError(f"{target} is the database itself; choose another file")
    if target.is_dir():
        raise BackupError(f"{target} is a folder; name the backup file")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)  # a copy broken off by an earlier run of this process id
    create_private(partial)
    try:
        # mode=rw: never create a database where there was none.
        reader = sqlite3.connect(f"file:{quote(str(source))}?mode=rw", uri=True)
        try:
            copy = sqlite3.connect(partial)
            try:
                reader.backup(copy)  # all pages in one step: one consistent snapshot
                copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                verdict = copy.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                copy.close()
        finally:
            reader.close()
        if verdict != "ok":
            raise BackupError(f"the copy failed its check ({verdict}); the database may be damaged")
        sync_file(str(partial))
        os.replace(partial, target)
        with contextlib.suppress(OSError):  # the rename itself, durable (not every system can)
            sync_file(str(target.parent))
    except sqlite3.Error as exc:
        raise BackupError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size
