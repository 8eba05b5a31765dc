"""`hemadose backup` and `hemadose audit`: the database copied, the audit chain checked or exported."""

from __future__ import annotations

import sys
from pathlib import Path

from bot.commands.common import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE, reason, settings_or_none


def run_backup(target: Path, db: str | None) -> int:
    from sqlalchemy.engine import make_url

    from bot.settings import sqlite_file
    from bot.storage.backup import BackupError, backup_sqlite

    settings = settings_or_none("backup")
    if settings is None:
        return EXIT_INVALID
    url, problem = settings.database(db)
    if problem is not None:
        print(f"hemadose backup: {problem}", file=sys.stderr)
        return EXIT_INVALID
    if not url.startswith("sqlite"):
        try:
            backend = make_url(url).get_backend_name()
        except Exception:  # an unreadable URL: never echo it (it may carry a password)
            backend = "not SQLite"
        print(
            f"hemadose backup: the database is {backend}, not SQLite; back it up with pg_dump "
            "(e.g. pg_dump --format=custom --file FILE DBNAME; see the README).",
            file=sys.stderr,
        )
        return EXIT_INVALID
    source = sqlite_file(url)
    if source is None:
        print("hemadose backup: an in-memory database has nothing to back up", file=sys.stderr)
        return EXIT_INVALID
    try:
        size = backup_sqlite(source, target)
    except (BackupError, OSError) as exc:
        reason = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"hemadose backup: {reason}", file=sys.stderr)
        return EXIT_UNREADABLE
    print(f"Backed up {source} to {target} ({size} bytes, checked).")
    return EXIT_OK


async def run_audit(action: str, db: str | None, target: Path | None) -> int:
    """`audit verify` (0 intact, 1 broken, 2 could not check) and `audit export`."""
    from bot.settings import sqlite_file
    from bot.storage import audit_chain, open_storage
    from bot.storage.files import open_private

    name = f"audit {action}"
    settings = settings_or_none(name)
    if settings is None:
        return EXIT_INVALID
    url, problem = settings.database(db)
    file = sqlite_file(url)
    if problem is None and file is not None and not file.is_file():
        problem = f"there is no database at {file}"
    if problem is not None:
        print(f"hemadose {name}: {problem}", file=sys.stderr)
        return EXIT_INVALID
    try:
        storage = await open_storage(url)
    except Exception as exc:
        print(f"hemadose {name}: cannot open the database: {reason(exc)}", file=sys.stderr)
        return EXIT_INVALID
    try:
        async with storage.session() as session:
            if action == "verify":
                verdict = await audit_chain.verify(session)
                if verdict.problem is not None:
                    print(f"audit chain BROKEN: {verdict.problem} ({verdict.entries} entries before it intact)")
                    return EXIT_UNREADABLE
                print(f"audit chain intact: {verdict.entries} entries; head {verdict.head}")
                return EXIT_OK
            try:
                out = sys.stdout if target is None else open_private(target)
            except OSError as exc:
                print(f"hemadose {name}: cannot write {target}: {exc.strerror}", file=sys.stderr)
                return EXIT_UNREADABLE
            count = 0
            try:
                async for row in audit_chain.entries(session):
                    out.write(audit_chain.export_line(row) + "\n")
                    count += 1
            finally:
                if target is not None:
                    out.close()
            if target is not None:
                print(f"{count} audit entries written to {target}", file=sys.stderr)
            return EXIT_OK
    finally:
        await storage.close()
