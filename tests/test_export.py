"""/export: the FHIR Bundle of every dialogue's saved patient validates, the note is the card's, the
CSV's columns are documented, and the calendar parses back to the decision's dates and alarms."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.bundle import Bundle
from icalendar import Calendar
from sqlalchemy import select

from bot.exports import record as records
from bot.exports.csv_format import COLUMNS, KINDS, from_csv, to_csv
from bot.exports.fhir import LABEL_SYSTEM, from_fhir, to_fhir
from bot.exports.ics import planned, to_ics
from bot.exports.note import clinical_note
from bot.exports.record import PatientRecord
from bot.replay import load, replay
from bot.storage import open_storage
from bot.storage.tables import PatientRow, User

DIALOGUES = Path(__file__).parent / "dialogues"
SAVING = sorted(  # every dialogue that presses Save to patient (and does not delete or undo it after)
    path
    for path in DIALOGUES.glob("*.yaml")
    if (presses := {s.get("press") for s in load(path)["steps"]})
    and "Save to patient" in presses
    and not presses & {"Delete patient", "↩ Undo"}
)
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
TODAY = dt.date(2027, 12, 31)  # after every dialogue's dates: an import refuses results from the future
EXPORT = DIALOGUES / "export_luspatercept_note_csv_fhir_ics.yaml"
ROMIPLOSTIM = DIALOGUES / "flow_followup_romiplostim_increase_saved.yaml"
LOINC = {"platelets": {"777-3"}, "hemoglobin": {"718-7", "59260-0"}}


async def saved_records(url: str) -> list[PatientRecord]:
    """Every patient of every user in the database, read whole as /export reads it."""
    storage = await open_storage(url)
    try:
        async with storage.session() as session:
            pairs = (await session.execute(select(User.id, PatientRow.label).join(PatientRow))).all()
            found = [await records.read(session, user_id, label) for user_id, label in pairs]
    finally:
        await storage.close()
    return [record for record in found if record is not None]


async def replayed(path: Path, url: str) -> list[PatientRecord]:
    result = await replay(load(path), url)
    assert result.passed, "\n".join(m.report() for m in result.mismatches)
    return await saved_records(url)


def the_record(record: PatientRecord) -> tuple[object, ...]:
    """What an import brings back: the facts, the treatment, every result, dose and transfusion."""
    return (record.facts(), record.treatment, record.labs, record.doses, record.transfusions)


def test_every_dialogue_that_saves_a_patient_is_checked() -> None:
    assert len(SAVING) >= 40
    assert EXPORT in SAVING
    assert ROMIPLOSTIM in SAVING


@pytest.mark.parametrize("path", SAVING, ids=[p.stem for p in SAVING])
async def test_the_fhir_bundle_of_every_saved_patient_validates(path: Path, new_db_url: Callable[[str], str]) -> None:
    saved = await replayed(path, new_db_url("replay"))
    assert saved, f"{path.name} saves no patient"
    for record in saved:
        bundle = Bundle.model_validate_json(to_fhir(record, NOW))  # fhir.resources validates every resource
        resources: list[Any] = [entry.resource for entry in bundle.entry or []]
        kinds = Counter(resource.get_resource_type() for resource in resources)
        last = record.last
        facts = sum(value is not None for name, value in record.facts().items() if name != "weight_date")
        assert kinds == Counter(
            {
                "Patient": 1,
                "Observation": len(record.labs) + facts,
                "MedicationAdministration": len(record.doses),
                "Procedure": len(record.transfusions),
                "MedicationStatement": 1 if record.treatment else 0,
                "MedicationRequest": 1 if last else 0,
                "DetectedIssue": len(last.response.warnings) if last else 0,
                "Provenance": 1,
            }
        )
        patient = next(r for r in resources if r.get_resource_type() == "Patient")
        assert patient.model_dump(exclude_none=True) == {
            "resourceType": "Patient",
            "identifier": [{"system": LABEL_SYSTEM, "value": record.label}],
        }  # the label as a pseudonymous identifier, nothing else
        labs = [r for r in resources if r.get_resource_type() == "Observation" and r.category]
        for lab, observation in zip(record.labs, labs, strict=True):
            assert observation.code.coding[0].system == "http://loinc.org"
            assert observation.code.coding[0].code in LOINC[lab.test]
            assert observation.valueQuantity.system == "http://unitsofmeasure.org"
            assert str(observation.valueQuantity.value) == lab.value
            assert observation.valueQuantity.unit == lab.unit
        provenance = next(r for r in resources if r.get_resource_type() == "Provenance")
        assert provenance.agent[0].who.display == "HemaDose (rules v1.1)"
        assert len(provenance.target) == len(resources) - 1
        if last is not None:
            request = next(r for r in resources if r.get_resource_type() == "MedicationRequest")
            assert request.intent == "proposal"
            assert last.response.ruleset in request.note[0].text
            if last.response.dose is not None:
                dose = request.dosageInstruction[0].doseAndRate[0].doseQuantity
                wanted = (Decimal(str(last.response.dose.amount)), last.response.dose.unit)
                assert (dose.value, dose.unit) == wanted
        parsed = from_fhir(to_fhir(record, NOW), TODAY)  # and it reads back to the same record
        assert parsed.problems == []
        assert the_record(parsed.records[record.label]) == the_record(record)


async def test_the_luspatercept_bundle_in_full(new_db_url: Callable[[str], str]) -> None:
    (record,) = await replayed(EXPORT, new_db_url("replay"))
    resources: list[Any] = [e.resource for e in Bundle.model_validate_json(to_fhir(record, NOW)).entry or []]
    by_kind = {r.get_resource_type(): r for r in resources}
    hb = next(r for r in resources if r.get_resource_type() == "Observation" and r.category)
    assert (hb.code.coding[0].code, str(hb.valueQuantity.value), hb.valueQuantity.code) == ("718-7", "8.9", "g/dL")
    assert str(hb.effectiveDateTime) == "2026-11-21"
    given = by_kind["MedicationAdministration"]
    assert (given.status, str(given.effectiveDateTime), str(given.dosage.dose.value)) == (
        "completed",
        "2026-11-01",
        "1",
    )
    transfusion = by_kind["Procedure"]
    assert str(transfusion.performedDateTime) == "2026-11-08"
    assert str(transfusion.extension[0].valueDecimal) == "1"
    request = by_kind["MedicationRequest"]
    assert request.status == "active"
    instruction = request.dosageInstruction[0]
    assert instruction.text == (
        "93.1 mg (1.33 mg/kg) = 1.86 mL of the 50 mg/mL solution, as 2 injections (at most 1.2 mL each)"
    )
    assert [str(day) for day in instruction.timing.event] == ["2026-11-22"]
    issues = [r for r in resources if r.get_resource_type() == "DetectedIssue"]
    assert [(i.code.text, i.severity) for i in issues] == [
        ("hypertension", "moderate"),
        ("thrombosis_risk", "moderate"),
        ("embryo_fetal_toxicity", "low"),
        ("label_update_pending", "low"),
        ("split_injection", "low"),
    ]


async def test_the_note_is_the_card_with_its_reasons(new_db_url: Callable[[str], str]) -> None:
    url = new_db_url("replay")
    result = await replay(load(EXPORT), url)
    (card,) = [text for cards in result.cards.values() for text in cards]
    (record,) = await saved_records(url)
    note = clinical_note(record)
    assert note is not None
    head, rest = note.split("\n\n", 1)
    last = record.last
    assert last is not None
    assert head == (
        "HemaDose clinical note — patient M-23\n"
        f"Decision for 2026-11-22, asked by tg:1001 at {last.at:%Y-%m-%d %H:%M} UTC\n"
        "Ruleset luspatercept/us (HemaDose rules v1.1)"
    )
    assert rest.startswith(card + "\n\nWhy this recommendation:\n1. 2 doses at 1 mg/kg")
    assert "- hypertension (warning): Hypertension can occur: check blood pressure before every dose." in rest


def test_no_note_and_no_calendar_without_a_decision() -> None:
    assert clinical_note(PatientRecord(label="RX-1")) is None
    assert to_ics(PatientRecord(label="RX-1"), NOW) is None


async def test_the_calendar_parses_back_to_the_decisions_dates_at_the_reminder_time(
    new_db_url: Callable[[str], str],
) -> None:
    (record,) = await replayed(EXPORT, new_db_url("replay"))
    ics = to_ics(record, NOW)
    assert ics is not None
    events = Calendar.from_ical(ics).walk("VEVENT")
    london = ZoneInfo("Europe/London")
    assert [(str(e["SUMMARY"]), e.decoded("DTSTART")) for e in events] == [
        ("M-23: luspatercept dose", dt.datetime(2026, 11, 22, 9, 0, tzinfo=london)),
        ("M-23: haemoglobin (pre-dose)", dt.datetime(2026, 12, 13, 9, 0, tzinfo=london)),
    ]
    last = record.last
    assert last is not None
    assert [e.decoded("DTSTART").date() for e in events] == [day for _, day in planned(last.response)]
    alarms = [alarm for event in events for alarm in event.walk("VALARM")]
    assert [(str(a["ACTION"]), a.decoded("TRIGGER")) for a in alarms] == [("DISPLAY", dt.timedelta(0))] * 2


async def test_without_reminders_the_calendar_has_all_day_events(new_db_url: Callable[[str], str]) -> None:
    saved = await replayed(ROMIPLOSTIM, new_db_url("replay"))
    record = next(r for r in saved if r.label == "RX-12")
    assert record.reminder_time is None
    last = record.last
    assert last is not None
    ics = to_ics(record, NOW)
    assert ics is not None
    events = Calendar.from_ical(ics).walk("VEVENT")
    assert [e.decoded("DTSTART") for e in events] == [day for _, day in planned(last.response)]
    assert all(isinstance(e.decoded("DTSTART"), dt.date) for e in events)
    assert all(alarm.decoded("TRIGGER") == dt.timedelta(0) for e in events for alarm in e.walk("VALARM"))


async def test_the_csv_reads_back_to_the_same_record(new_db_url: Callable[[str], str]) -> None:
    for path in (EXPORT, ROMIPLOSTIM):
        for record in await replayed(path, new_db_url(path.stem)):
            parsed = from_csv(to_csv(record), TODAY)
            assert parsed.problems == []
            assert the_record(parsed.records[record.label]) == the_record(record)
            assert parsed.recommendations == len(record.recommendations)


def test_the_csv_columns_and_kinds_are_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "csv-format.md").read_text()
    assert f"`{','.join(COLUMNS)}`" in doc
    for name in (*COLUMNS, *KINDS):
        assert f"`{name}`" in doc, name


def test_the_terminal_writes_the_files_and_prints_their_paths(tmp_path: Path) -> None:
    """`hemadose chat --files DIR`: /export's documents written there (0600), each path printed; the CSV
    then imported by `hemadose import` into another database, where the follow-up starts from it."""
    from tests.test_terminal import HEMADOSE, SCRIPT, chat

    out = tmp_path / "out"
    out.mkdir()
    done = chat(tmp_path, SCRIPT + "/export RX-12\n#5\n", "--files", str(out))
    assert done.returncode == 0, done.stderr
    names = ["RX-12-2026-11-22-note.txt", "RX-12-2026-11-22-record.csv", "RX-12-2026-11-22-record.fhir.json"]
    names.append("RX-12-2026-11-22-plan.ics")
    for name in names:
        assert f"File written: {out / name}\n" in done.stdout
        assert (out / name).stat().st_mode & 0o777 == 0o600
    note = (out / names[0]).read_text()
    assert "INCREASE: 4 mcg/kg (was 3)\nDose: 288 mcg (4 mcg/kg × 72 kg) = 0.58 mL of the 500 mcg/mL solution\n" in note
    assert (out / names[1]).read_text().startswith(",".join(COLUMNS) + "\n")
    other = f"sqlite:///{tmp_path}/other.db"
    command = [str(HEMADOSE), "import", str(out / names[1]), "--db", other, "--user", "ward-3", "--today", "2026-11-22"]
    imported = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert imported.returncode == 0, imported.stderr
    assert (
        "• RX-12 (a new patient): 1 result, 1 dose, 0 transfusions, the current treatment, weight." in imported.stdout
    )
    command = [str(HEMADOSE), "chat", "--db", other, "--user", "ward-3", "--today", "2026-11-22"]
    shown = subprocess.run(command, input="/patients RX-12\n", capture_output=True, text=True, timeout=60, check=False)
    assert "Dose: on 4 mcg/kg since 2026-11-22" in shown.stdout
