"""/export and imports in words: the formats offered, the captions of the files, and an import's report.

No I/O: bot/exports builds the files from the record; this module says what they are and what an
import did. Button data `ex:<format>:<label>` (under Telegram's 64 bytes: a label is at most 32).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from flows.replies import Button, Reply, rows

PREFIX = "ex:"
NO_LABEL = "Which patient? Type /export LABEL, e.g. /export RX-12. /patients lists your labels."
MAX_PROBLEMS_SHOWN = 30


class Format(StrEnum):
    """The export's formats; the letters are the stored button data."""

    NOTE = "n"
    CSV = "c"
    FHIR = "f"
    CALENDAR = "i"
    ALL = "a"


NAMES = {
    Format.NOTE: "Clinical note",
    Format.CSV: "CSV (data)",
    Format.FHIR: "FHIR R4 Bundle",
    Format.CALENDAR: "Calendar (.ics)",
    Format.ALL: "All four",
}
CAPTIONS = {
    Format.NOTE: "Clinical note for {label}: the last decision, its dose, dates, warnings and rules, to paste "
    "into the patient's record.",
    Format.CSV: "{label}'s record as CSV: results, doses, transfusions and recommendations "
    "(columns: docs/csv-format.md).",
    Format.FHIR: "{label}'s record as a FHIR R4 Bundle (JSON), for an electronic record that reads FHIR.",
    Format.CALENDAR: "{label}'s planned dose and blood-test dates, with alarms at the reminder time, for the clinic's "
    "calendar.",
}
EXTENSIONS = {Format.NOTE: "txt", Format.CSV: "csv", Format.FHIR: "fhir.json", Format.CALENDAR: "ics"}
MEDIA_TYPES = {
    Format.NOTE: "text/plain",
    Format.CSV: "text/csv",
    Format.FHIR: "application/fhir+json",
    Format.CALENDAR: "text/calendar",
}


@dataclass(frozen=True, slots=True)
class ExportButton:
    format: Format
    label: str

    def encode(self) -> str:
        return f"{PREFIX}{self.format.value}:{self.label}"


def read_button(argument: str) -> ExportButton | None:
    """`<format>:<label>` (the data after `ex:`), or None for data this assistant never sent."""
    code, _, label = argument.partition(":")
    if not label or code not in {f.value for f in Format}:
        return None
    return ExportButton(Format(code), label)


def menu(label: str) -> Reply:
    """The formats offered for one patient; all four at once is the last button."""
    text = (
        f"Export {label}'s record. Clinical note: the last decision in words, to paste into the record. "
        "CSV: every result, dose, transfusion and recommendation, for a spreadsheet. "
        "FHIR: the same for an electronic record. Calendar: the planned dose and blood-test dates."
    )
    buttons = [Button(NAMES[f], ExportButton(f, label).encode()) for f in Format]
    return Reply(text, rows(buttons, 2))


def filename(label: str, chosen: Format, day: str) -> str:
    """'RX-12-2026-11-22-note.txt': the label made safe for a file name (letters, digits, - and _ kept)."""
    safe = "".join(char if char.isalnum() or char in "-_" else "_" for char in label)
    kind = {Format.NOTE: "note", Format.CSV: "record", Format.FHIR: "record", Format.CALENDAR: "plan"}[chosen]
    return f"{safe}-{day}-{kind}.{EXTENSIONS[chosen]}"


def unknown(label: str) -> str:
    return f"You have no patient labelled '{label}'. /patients lists your labels."


def nothing(label: str, chosen: Format) -> str:
    if chosen == Format.NOTE:
        return f"No recommendation is on record for {label} yet, so there is no note: /new gives one."
    return f"No recommendation for {label} plans a dose or blood-test date, so there is no calendar."


@dataclass(slots=True)
class Imported:
    """What an import wrote into one patient's record, and what it left as it was."""

    label: str
    created: bool = False  # the patient was new to this user
    labs: int = 0
    doses: int = 0
    transfusions: int = 0
    facts: list[str] = field(default_factory=list)  # filled in: the record had none
    treatment: bool = False  # the current treatment added (the record had none)
    duplicates: list[str] = field(default_factory=list)  # already on record: skipped
    kept: list[str] = field(default_factory=list)  # the record's own, kept as they were


FACT_WORDS = {
    "weight_kg": "weight",
    "age_years": "age",
    "child_pugh": "Child-Pugh class",
    "baseline_rbc_units_per_12_weeks": "baseline transfusion burden",
    "treatment": "current treatment",
}
UPLOAD_HELP = (
    "Send a CSV in the export's format (docs/csv-format.md) or a FHIR Bundle (.json), as exported by /export, "
    "to add a patient's results to your records."
)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def refused(name: str, problems: list[str]) -> str:
    """Nothing imported: every problem, line by line (or entry by entry)."""
    lines = [f"Nothing was imported from {name}: {_plural(len(problems), 'problem')} to fix first."]
    lines += [f"• {problem}" for problem in problems[:MAX_PROBLEMS_SHOWN]]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        lines.append(f"… and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    lines.append("Correct the file and send it again; nothing of it was kept.")
    return "\n".join(lines)


def report(name: str, imported: list[Imported], recommendations: int) -> str:
    """What was added, patient by patient; duplicates skipped and facts kept, named."""
    lines = [f"Imported from {name}:"]
    for one in imported:
        added = [
            _plural(one.labs, "result"),
            _plural(one.doses, "dose"),
            _plural(one.transfusions, "transfusion"),
        ]
        if one.treatment:
            added.append("the current treatment")
        added += [FACT_WORDS[name] for name in one.facts]
        state = "a new patient" if one.created else "on record"
        lines.append(f"• {one.label} ({state}): {', '.join(added)}.")
        if one.duplicates:
            lines.append(f"  Skipped, already on record ({len(one.duplicates)}): {'; '.join(one.duplicates)}.")
        if one.kept:
            lines.append(f"  Kept as on record: {', '.join(FACT_WORDS[name] for name in one.kept)}.")
    if recommendations:
        lines.append(
            f"{_plural(recommendations, 'recommendation')} in the file not imported: the audit keeps only the "
            "decisions given here."
        )
    lines.append("The next consultation for these patients starts from their record (/patients LABEL).")
    return "\n".join(lines)
