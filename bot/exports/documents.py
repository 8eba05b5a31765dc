"""/export's documents: one patient's record read once, and the files the chosen format asks for."""

from __future__ import annotations

import datetime as dt

from bot.exports.csv_format import to_csv
from bot.exports.fhir import to_fhir
from bot.exports.ics import to_ics
from bot.exports.note import clinical_note
from bot.exports.record import PatientRecord
from flows import exporting
from flows.exporting import Format
from flows.replies import Document, Reply

SINGLE = (Format.NOTE, Format.CSV, Format.FHIR, Format.CALENDAR)


def content(record: PatientRecord, chosen: Format, now: dt.datetime, default_zone: str) -> bytes | None:
    """The file's bytes, or None when the record has nothing for it (no decision: no note, no dates)."""
    if chosen == Format.NOTE:
        note = clinical_note(record)
        return note.encode("utf-8") if note is not None else None
    if chosen == Format.CSV:
        return to_csv(record)
    if chosen == Format.FHIR:
        return to_fhir(record, now)
    return to_ics(record, now, default_zone)


def documents(
    record: PatientRecord, chosen: Format, now: dt.datetime, today: dt.date, default_zone: str
) -> list[Reply]:
    """A reply per file (its caption the reply's text); a line instead where a file has nothing to hold."""
    replies = []
    for one in SINGLE if chosen == Format.ALL else (chosen,):
        data = content(record, one, now, default_zone)
        if data is None:
            replies.append(Reply(exporting.nothing(record.label, one)))
            continue
        name = exporting.filename(record.label, one, today.isoformat())
        caption = exporting.CAPTIONS[one].format(label=record.label)
        replies.append(Reply(caption, document=Document(name, data, exporting.MEDIA_TYPES[one])))
    return replies
