"""`hemadose import FILE`: a CSV in the export's format or a FHIR Bundle into one user's records."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from bot.commands.common import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE, reason, settings_or_none


async def run_import(file: Path, user: str, db: str | None, today: dt.date | None = None) -> int:
    """One transaction: everything imported (exit 0), or nothing and every problem listed (exit 1)."""
    from zoneinfo import ZoneInfo

    from bot.exports.importing import import_file
    from bot.storage import open_storage
    from flows import exporting

    settings = settings_or_none("import")
    if settings is None:
        return EXIT_INVALID
    try:
        content = file.expanduser().read_bytes()
    except OSError as exc:
        print(f"hemadose import: cannot read {file}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID
    url, problem = settings.database(db)
    if problem is not None:
        print(f"hemadose import: {problem}", file=sys.stderr)
        return EXIT_INVALID
    try:
        storage = await open_storage(url)
    except Exception as exc:
        print(f"hemadose import: cannot open the database: {reason(exc)}", file=sys.stderr)
        return EXIT_INVALID
    try:
        async with storage.session() as session, session.begin():
            user_id = await storage.user_id(session, user)
            zone = ZoneInfo(settings.time_zone)
            day = today or dt.datetime.now(dt.UTC).astimezone(zone).date()
            outcome = await import_file(session, user_id, content, day)
            if outcome.problems:
                print(exporting.refused(file.name, outcome.problems))
                return EXIT_UNREADABLE
            print(exporting.report(file.name, outcome.imported, outcome.recommendations))
            return EXIT_OK
    finally:
        await storage.close()
