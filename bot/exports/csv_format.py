"""The CSV export and import: one file, one row per item of a patient's record (docs/csv-format.md).

The same format is read back by `hemadose import` and by a file sent to the bot; recommendations are
written (for the reader) but not imported: the audit holds only decisions this installation gave.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from typing import Any

from bot.exports import checks
from bot.exports.checks import UnreadableError
from bot.exports.record import PatientRecord, Recommendation
from core.luspatercept import TWELVE_WEEKS_DAYS

COLUMNS = (
    "patient",
    "kind",
    "date",
    "what",
    "value",
    "unit",
    "drug",
    "status",
    "indication",
    "region",
    "since",
    "on_hold",
    "next_dose",
    "next_check",
    "rule",
    "source",
    "ruleset",
)
BASELINE_UNIT = f"units/{TWELVE_WEEKS_DAYS // 7} weeks"  # luspatercept's baseline burden window
KINDS = ("patient", "treatment", "lab", "dose", "transfusion", "recommendation")
FACT_NAMES = {  # kind=patient: `what` -> the record's fact, its unit
    "weight": ("weight_kg", "kg"),
    "age": ("age_years", "years"),
    "child_pugh": ("child_pugh", ""),
    "baseline_rbc": ("baseline_rbc_units_per_12_weeks", BASELINE_UNIT),
}
YES, NO = "yes", "no"


def _day(value: dt.date | None) -> str:
    return value.isoformat() if value is not None else ""


def _recommendation(label: str, entry: Recommendation) -> dict[str, str]:
    request, response = entry.request, entry.response
    monitoring = response.next_monitoring
    rule = response.rationale[0]
    return {
        "patient": label,
        "kind": "recommendation",
        "date": request.as_of.isoformat(),
        "what": response.action,
        "value": checks.text(checks.number(response.dose.amount, "dose")) if response.dose else "",
        "unit": response.dose.unit if response.dose else "",
        "drug": request.drug,
        "indication": request.indication,
        "region": response.ruleset.split("/")[1],
        "next_dose": _day(response.next_dose_date),
        "next_check": _day(monitoring.date) if monitoring is not None else "",
        "rule": rule.rule,
        "source": rule.source,
        "ruleset": response.ruleset,
    }


def to_csv(record: PatientRecord) -> bytes:
    """The record as CSV (UTF-8, a header row, RFC 4180 quoting)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\r\n", restval="")
    writer.writeheader()
    label = record.label
    for what, (name, unit) in FACT_NAMES.items():
        value = getattr(record, name)
        if value is not None:
            date = _day(record.weight_date) if name == "weight_kg" else ""
            row = {"patient": label, "kind": "patient", "what": what, "value": value, "unit": unit, "date": date}
            writer.writerow(row)
    t = record.treatment
    if t is not None:
        writer.writerow(
            {
                "patient": label,
                "kind": "treatment",
                "drug": t.drug,
                "indication": t.indication,
                "region": t.region,
                "value": t.dose_amount or "",
                "unit": t.dose_unit,
                "since": _day(t.since),
                "on_hold": YES if t.on_hold else NO,
            }
        )
    for lab in record.labs:
        writer.writerow(
            {"patient": label, "kind": "lab", "date": _day(lab.date), "what": lab.test, "value": lab.value}
            | {"unit": lab.unit}
        )
    for dose in record.doses:
        writer.writerow(
            {"patient": label, "kind": "dose", "date": _day(dose.given_on), "drug": dose.drug, "value": dose.amount}
            | {"unit": dose.unit, "status": dose.status}
        )
    for transfusion in record.transfusions:
        writer.writerow(
            {"patient": label, "kind": "transfusion", "date": _day(transfusion.date), "value": transfusion.units}
            | {"unit": "units"}
        )
    for entry in record.recommendations:
        writer.writerow(_recommendation(label, entry))
    return out.getvalue().encode("utf-8")


class Parsed:
    """What a file holds, patient by patient, with every problem found (by line or entry)."""

    def __init__(self) -> None:
        self.records: dict[str, PatientRecord] = {}
        self.problems: list[str] = []
        self.recommendations = 0  # written by an export, not imported

    def record(self, label: str) -> PatientRecord:
        return self.records.setdefault(label, PatientRecord(label=label))


def _row(parsed: Parsed, row: dict[str, Any], today: dt.date) -> None:
    """One row into its patient's record; raises UnreadableError."""
    get: Callable[[str], str] = lambda name: str(row.get(name) or "").strip()  # noqa: E731
    kind = get("kind")
    if kind not in KINDS:
        raise UnreadableError(f"kind '{kind}' is not one of {', '.join(KINDS)}")
    label = checks.label(get("patient"), today)
    if kind == "recommendation":
        parsed.recommendations += 1
        parsed.record(label)
        return
    record = parsed.record(label)
    if kind == "lab":
        record.labs.append(checks.lab(get("what"), get("value"), get("unit"), checks.day(get("date"), "date", today)))
    elif kind == "dose":
        day = checks.day(get("date"), "date", today)
        record.doses.append(checks.dose(get("drug"), get("value"), get("unit"), day, get("status") or "given"))
    elif kind == "transfusion":
        record.transfusions.append(checks.transfusion(checks.day(get("date"), "date", today), get("value")))
    elif kind == "treatment":
        if record.treatment is not None:
            raise UnreadableError("a second treatment row for this patient (a record has one current treatment)")
        if get("on_hold") not in (YES, NO, ""):
            raise UnreadableError(f"on_hold '{get('on_hold')}' is not yes or no")
        since = checks.day(get("since"), "since", today) if get("since") else None
        record.treatment = checks.treatment(
            get("drug"), get("indication"), get("region"), get("value"), get("unit"), since, get("on_hold") == YES
        )
    else:
        _fact(record, get("what"), get("value"), get("date"), today)


def _fact(record: PatientRecord, what: str, value: str, date: str, today: dt.date) -> None:
    if what not in FACT_NAMES:
        raise UnreadableError(f"patient fact '{what}' is not one of {', '.join(FACT_NAMES)}")
    if what == "weight":
        record.weight_kg = checks.weight(value)
        record.weight_date = checks.day(date, "weight date", today) if date else None
    elif what == "age":
        record.age_years = checks.age(value)
    elif what == "child_pugh":
        record.child_pugh = checks.child_pugh(value)
    else:
        record.baseline_rbc_units_per_12_weeks = checks.baseline(value)


def from_csv(content: bytes, today: dt.date) -> Parsed:
    """Every row read and checked; each problem names its line (the header is line 1)."""
    parsed = Parsed()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        parsed.problems.append(f"the file is not UTF-8 text (byte {error.start + 1})")
        return parsed
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [column for column in ("patient", "kind", "date", "what", "value", "unit") if column not in header]
    if missing:
        parsed.problems.append(f"line 1: the header lacks {', '.join(missing)} (the columns: {', '.join(COLUMNS)})")
        return parsed
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                parsed.problems.append(f"line {line}: more fields than the header's {len(header)}")
                continue
            try:
                _row(parsed, row, today)
            except UnreadableError as problem:
                parsed.problems.append(f"line {line}: {problem}")
    except csv.Error as error:
        parsed.problems.append(f"line {reader.line_num}: {error}")
    if not parsed.records and not parsed.problems:
        parsed.problems.append("no rows after the header")
    return parsed
