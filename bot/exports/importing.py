"""An import: a CSV in the export's format or a FHIR Bundle, checked whole, then written in one go.

Every problem is found before anything is written; one problem and nothing is imported. The writes
run in the caller's transaction (the chat's update, or `hemadose import`'s own), so a failure part
way leaves nothing half-imported either.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from bot.exports import record
from bot.exports.csv_format import Parsed, from_csv
from bot.exports.fhir import from_fhir
from bot.storage.session import DbSession
from flows.exporting import Imported

MAX_BYTES = 5_000_000  # a patient's record is kilobytes; a larger file is refused before it is read


def parse(content: bytes, today: dt.date) -> Parsed:
    """A FHIR Bundle (JSON: it starts with '{') or else the export's CSV."""
    if len(content) > MAX_BYTES:
        parsed = Parsed()
        parsed.problems.append(f"the file is {len(content):,} bytes; an import takes at most {MAX_BYTES:,}")
        return parsed
    if content.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return from_fhir(content, today)
    return from_csv(content, today)


@dataclass(slots=True)
class Outcome:
    problems: list[str] = field(default_factory=list)  # non-empty: nothing was written
    imported: list[Imported] = field(default_factory=list)
    recommendations: int = 0  # in the file, not imported (the audit's)


async def import_file(session: DbSession, user_id: int, content: bytes, today: dt.date) -> Outcome:
    """The file's patients added to the user's records (theirs only), or nothing and every problem."""
    parsed = parse(content, today)
    if parsed.problems:
        return Outcome(problems=parsed.problems)
    outcome = Outcome(recommendations=parsed.recommendations)
    for incoming in parsed.records.values():
        outcome.imported.append(await record.add(session, user_id, incoming))
    return outcome
