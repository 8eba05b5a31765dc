"""Imports: export then import into an empty database gives the same record (CSV and FHIR); every
problem is reported line by line (or entry by entry) and then nothing is imported, even when the
database fails part way; duplicates are skipped and listed; the importing user's records only."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.exports import record as records
from bot.exports.csv_format import to_csv
from bot.exports.fhir import to_fhir
from bot.exports.importing import import_file
from bot.exports.record import PatientRecord
from bot.storage import Storage, open_storage
from bot.storage.tables import Dose, LabRow, PatientRow, Regimen, TransfusionRow
from tests.test_export import EXPORT, NOW, ROMIPLOSTIM, replayed, the_record

TODAY = dt.date(2026, 11, 22)
HEADER = "patient,kind,date,what,value,unit,drug,status,indication,region,since,on_hold\n"


async def imported(storage: Storage, user: str, content: bytes, today: dt.date = TODAY) -> Any:
    async with storage.session() as session, session.begin():
        user_id = await storage.user_id(session, user)
        return await import_file(session, user_id, content, today)


async def read(storage: Storage, user: str, label: str) -> PatientRecord | None:
    async with storage.session() as session:
        return await records.read(session, await storage.user_id(session, user), label)


async def rows(storage: Storage) -> dict[str, int]:
    """How many rows each record table holds (every user's)."""
    async with storage.session() as session:
        return {
            table.__tablename__: int(await session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (PatientRow, Regimen, LabRow, Dose, TransfusionRow)
        }


@pytest.mark.parametrize("path", [EXPORT, ROMIPLOSTIM], ids=["luspatercept", "romiplostim_two_visits"])
@pytest.mark.parametrize("kind", ["csv", "fhir"])
async def test_export_then_import_into_an_empty_database_gives_the_same_record(
    path: Path, kind: str, new_db_url: Callable[[str], str]
) -> None:
    saved = await replayed(path, new_db_url("source"))
    storage = await open_storage(new_db_url("empty"))
    try:
        for record in saved:
            content = to_csv(record) if kind == "csv" else to_fhir(record, NOW)
            outcome = await imported(storage, "local:ward-3", content, dt.date(2027, 1, 1))
            assert outcome.problems == []
            assert outcome.recommendations == (len(record.recommendations) if kind == "csv" else 1)
            copy = await read(storage, "local:ward-3", record.label)
            assert copy is not None
            assert the_record(copy) == the_record(record)
            assert copy.recommendations == []  # the audit keeps only the decisions given here
    finally:
        await storage.close()


BAD_CSV = (
    HEADER
    + "RX-30,lab,2026-11-20,platelets,45,10^9/L,,,,,,\n"  # line 2: fine
    + "RX-30,lab,2026-11-21,platelets,5000,10^9/L,,,,,,\n"  # line 3: implausible (core's bound)
    + "RX-30,lab,2026-11-23,platelets,45,10^9/L,,,,,,\n"  # line 4: after today
    + "RX-30,vitals,2026-11-21,pulse,70,/min,,,,,,\n"  # line 5: not a kind
    + "RX-30,dose,2026-11-15,,3,mg,romiplostim,given,,,,\n"  # line 6: not romiplostim's unit
    + "John Smith,lab,2026-11-20,platelets,45,10^9/L,,,,,,\n"  # line 7: a name
    + "RX-30,treatment,,,3,mcg/kg,romiplostim,,itp,mars,2026-11-01,no\n"  # line 8: no such region
    + "RX-30,transfusion,2026-11-20,,0,units,,,,,,\n"  # line 9: no units
    + "RX-30,lab,2026-11-20,platelets,45\n"  # line 10: fewer fields: unit missing
    + "RX-30,patient,,weight,7000,kg,,,,,,\n"  # line 11: a weight in grams
)


async def test_csv_problems_are_reported_line_by_line_and_nothing_is_imported(db_url: str) -> None:
    storage = await open_storage(db_url)
    try:
        outcome = await imported(storage, "local:ward-3", BAD_CSV.encode())
        assert outcome.problems == [
            "line 3: platelet count 5000 10^9/L is above 3000 x10^9/L; did you mean 5 (a count of 5000 per uL)?",
            "line 4: date 2026-11-23 is after today (2026-11-22)",
            "line 5: kind 'vitals' is not one of patient, treatment, lab, dose, transfusion, recommendation",
            "line 6: romiplostim is dosed in mcg/kg, not mg",
            "line 7: patient label 'John Smith': 'John Smith' looks like a person's name. Please use a code with a "
            "digit instead (e.g. RX-12 or bed 4).",
            "line 8: 'mars' is not a region with rules for romiplostim (us, eu)",
            "line 9: units: Input should be greater than 0",
            "line 10: unit: '' is not a unit for platelets; expected one of 10^9/L, 10^3/uL, G/L, /uL",
            "line 11: weight 7000 kg is above 350 kg; did you mean 7 kg (a weight of 7000 g)?",
        ]
        assert outcome.imported == []
        assert await rows(storage) == dict.fromkeys(("patients", "regimens", "labs", "doses", "transfusions"), 0)
    finally:
        await storage.close()


async def test_fhir_problems_are_reported_entry_by_entry_and_nothing_is_imported(db_url: str) -> None:
    bundle = json.loads(to_fhir(PatientRecord(label="RX-30"), NOW))
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
        "effectiveDateTime": "2026-11-20",
    }
    bundle["entry"][1:1] = [
        {"resource": observation | {"valueQuantity": {"value": 45, "unit": "10^9/L"}}},  # entry 1: fine
        {"resource": observation | {"valueQuantity": {"value": 45000, "unit": "10^9/L"}}},  # entry 2: implausible
        {"resource": observation | {"valueQuantity": {"value": 9, "unit": "g/dL"}, "code": {"text": "x"}}},  # 3
        {"resource": {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}}},  # 4
    ]
    storage = await open_storage(db_url)
    try:
        outcome = await imported(storage, "local:ward-3", json.dumps(bundle).encode())
        assert outcome.problems == [
            "entry 2: platelet count 45000 10^9/L is above 3000 x10^9/L; did you mean 45 (a count of 45000 per uL)?",
            "entry 3: an Observation coded None is not a result HemaDose reads (LOINC 777-3, 718-7)",
            "entry 4: a Encounter is not part of a HemaDose record",
        ]
        malformed = await imported(
            storage,
            "local:ward-3",
            b'{"resourceType": "Bundle", "type": "collection", '
            b'"entry": [{"resource": {"resourceType": "Observation", "status": "final"}}]}',
        )
        assert malformed.problems == ["entry 0: code: Field required"]
        assert await rows(storage) == dict.fromkeys(("patients", "regimens", "labs", "doses", "transfusions"), 0)
    finally:
        await storage.close()


GOOD_CSV = (
    HEADER
    + "RX-31,patient,2026-11-20,weight,70,kg,,,,,,\n"
    + "RX-31,lab,2026-11-20,platelets,45,10^9/L,,,,,,\n"
    + "RX-31,lab,2026-11-21,platelets,52,10^9/L,,,,,,\n"
    + "RX-31,dose,2026-11-15,,3,mcg/kg,romiplostim,given,,,,\n"
    + "RX-32,lab,2026-11-21,hemoglobin,8.9,g/dL,,,,,,\n"
    + "RX-32,transfusion,2026-11-08,,2,units,,,,,,\n"
)


async def test_duplicates_are_skipped_and_listed_and_the_record_is_kept(db_url: str) -> None:
    storage = await open_storage(db_url)
    try:
        first = await imported(storage, "local:ward-3", GOOD_CSV.encode())
        assert [(i.label, i.created, i.labs, i.doses, i.transfusions, i.facts) for i in first.imported] == [
            ("RX-31", True, 2, 1, 0, ["weight_kg"]),
            ("RX-32", True, 1, 0, 1, []),
        ]
        again = GOOD_CSV.replace("weight,70", "weight,71") + "RX-31,lab,2026-11-22,platelets,60,10^9/L,,,,,,\n"
        second = await imported(storage, "local:ward-3", again.encode())
        assert [(i.label, i.created, i.labs, i.duplicates, i.kept) for i in second.imported] == [
            (
                "RX-31",
                False,
                1,
                [
                    "platelets 45 10^9/L on 2026-11-20",
                    "platelets 52 10^9/L on 2026-11-21",
                    "romiplostim dose (given) on 2026-11-15",
                ],
                ["weight_kg"],
            ),
            ("RX-32", False, 0, ["hemoglobin 8.9 g/dL on 2026-11-21", "transfusion of 2 units on 2026-11-08"], []),
        ]
        kept = await read(storage, "local:ward-3", "RX-31")
        assert kept is not None
        assert kept.weight_kg == "70"
        assert [lab.value for lab in kept.labs] == ["45", "52", "60"]
    finally:
        await storage.close()


async def test_an_import_reaches_only_the_importing_users_records(db_url: str) -> None:
    storage = await open_storage(db_url)
    try:
        await imported(storage, "tg:1001", GOOD_CSV.encode())
        assert await read(storage, "tg:1001", "RX-31") is not None
        assert await read(storage, "tg:1002", "RX-31") is None
    finally:
        await storage.close()


async def test_a_failure_part_way_leaves_nothing_half_imported(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = await open_storage(db_url)
    real = records.add
    done: list[str] = []

    async def fails_on_the_second(session: Any, user_id: int, incoming: PatientRecord) -> Any:
        if done:
            raise RuntimeError("the database went away")
        done.append(incoming.label)
        return await real(session, user_id, incoming)

    monkeypatch.setattr(records, "add", fails_on_the_second)
    try:
        with pytest.raises(RuntimeError):
            await imported(storage, "local:ward-3", GOOD_CSV.encode())
        assert done == ["RX-31"]  # the first patient was written in the transaction, then rolled back
        assert await rows(storage) == dict.fromkeys(("patients", "regimens", "labs", "doses", "transfusions"), 0)
    finally:
        await storage.close()


def test_hemadose_import_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cli.db"
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(GOOD_CSV)
    bad.write_text(BAD_CSV)
    args = ["--db", str(db), "--user", "ward-3", "--today", "2026-11-22"]
    assert main(["import", str(good), *args]) == 0
    assert capsys.readouterr().out == (
        "Imported from good.csv:\n"
        "• RX-31 (a new patient): 2 results, 1 dose, 0 transfusions, weight.\n"
        "• RX-32 (a new patient): 1 result, 0 doses, 1 transfusion.\n"
        "The next consultation for these patients starts from their record (/patients LABEL).\n"
    )
    assert main(["import", str(bad), *args]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Nothing was imported from bad.csv: 9 problems to fix first.\n• line 3: platelet count 5000")
    assert out.endswith("Correct the file and send it again; nothing of it was kept.\n")
    assert main(["import", str(tmp_path / "missing.csv"), *args]) == 2
    assert "cannot read" in capsys.readouterr().err


async def test_a_file_sent_twice_in_webhook_mode_is_imported_once(db_url: str) -> None:
    """An upload posted twice (to one replica or two) is answered once: its update id is claimed."""
    from bot.service import ChatService

    storage = await open_storage(db_url)
    service = ChatService(storage, "UTC", lambda: dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC))
    try:
        first = await service.import_document("tg:7", "tg:7:7", "good.csv", GOOD_CSV.encode(), update_id=41)
        assert first[0].text.startswith("Imported from good.csv:\n• RX-31 (a new patient): 2 results")
        assert await service.import_document("tg:7", "tg:7:7", "good.csv", GOOD_CSV.encode(), update_id=41) == []
        group = await service.import_document("tg:7", "tg:-5:7", "good.csv", GOOD_CSV.encode())
        assert [reply.text for reply in group] == [
            "HemaDose works in private chats only: open a private chat with the bot."
        ]
    finally:
        await storage.close()
