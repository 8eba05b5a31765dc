"""Records that can be corrected (bot/storage/corrections.py): a correction and a deletion each leave their
audit entries (old and new, who, when), a deleted patient's data is gone from every table but the audit's
tombstone, the chain still verifies (and an erasure no tombstone records is named), Undo takes back exactly
its save, and every function finds only the asking user's rows. On SQLite and PostgreSQL (db_url)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Table, create_engine, select, update

from bot.reminders import Reminders
from bot.storage import Storage, audit_chain, corrections, open_storage
from bot.storage.repository import MIGRATIONS
from bot.storage.tables import Audit, Base, Delivery, LabRow, Occurrence
from core import recommend
from core.models import DoseRequest
from flows.replies import AuditRecommendation, ScheduleReminders, request_json
from flows.state import Answers, ChatState
from tests.databases import sqlite_only
from tests.helpers import platelets, romiplostim
from tests.test_storage import consultation

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
GONE = "ZQ-4711"  # the patient deleted: a label found nowhere else
GONE_WEIGHT = "61.7"  # and a weight no other row holds


@pytest.fixture
async def storage(db_url: str) -> AsyncIterator[Storage]:
    opened = await open_storage(db_url)
    yield opened
    await opened.close()


async def saved(storage: Storage, user_ref: str, label: str, request: dict[str, Any], chat: str = "") -> int:
    """A consultation audited and saved for the user, as the chat does it; the user's id."""
    effect = consultation(label, request)
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, user_ref)
        await storage.audit(session, user, AuditRecommendation(label, effect.request, effect.response))
        changes = await storage.save_consultation(session, user, effect)
        await corrections.remember_save(
            session, user, chat or f"local:{user_ref}", label, request_json(effect.request), changes
        )
    return user


async def audit_rows(storage: Storage) -> list[Any]:
    async with storage.session() as session:
        return list((await session.execute(select(Audit.__table__).order_by(Audit.id))).all())


async def intact(storage: Storage) -> audit_chain.Verdict:
    async with storage.session() as session:
        return await audit_chain.verify(session)


async def lab_id(storage: Storage, user: int, label: str) -> int:
    async with storage.session() as session:
        patient = await storage.patient(session, user, label)
        assert patient is not None
        found = await session.scalar(select(LabRow.id).where(LabRow.patient_id == patient[0]))
        assert found is not None
        return found


async def test_a_correction_is_audited_with_the_old_and_new_value_who_and_when(storage: Storage):
    user = await saved(storage, "tg:1", "RX-12", romiplostim())
    row_id = await lab_id(storage, user, "RX-12")
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    async with storage.session() as session, session.begin():
        found = await corrections.find(session, user, "lab", row_id)
        assert found is not None
        await corrections.correct(session, user, "lab", row_id, found, {"value": "45", "date": dt.date(2026, 11, 20)})
    last = (await audit_rows(storage))[-1]
    assert (last.kind, last.user_id, last.patient_label, last.ruleset, last.response) == (
        "correction",
        user,
        "RX-12",
        "",
        {},
    )
    assert before <= last.at <= dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert last.request == {
        "what": "lab",
        "id": row_id,
        "old": {"test": "platelets", "value": "32", "unit": "10^9/L", "date": "2026-11-21"},
        "new": {"test": "platelets", "value": "45", "unit": "10^9/L", "date": "2026-11-20"},
    }
    async with storage.session() as session:
        assert await corrections.find(session, user, "lab", row_id) == (
            "RX-12",
            found.patient_id,
            {"test": "platelets", "value": "45", "unit": "10^9/L", "date": dt.date(2026, 11, 20)},
            "itp",
        )
    assert (await intact(storage)).intact


async def test_a_deleted_entry_and_a_changed_weight_are_audited(storage: Storage):
    user = await saved(storage, "tg:1", "RX-12", romiplostim())
    row_id = await lab_id(storage, user, "RX-12")
    async with storage.session() as session, session.begin():
        found = await corrections.find(session, user, "lab", row_id)
        assert found is not None
        await corrections.remove(session, user, "lab", row_id, found)
        await corrections.change_weight(session, user, found.patient_id, "RX-12", "74", dt.date(2026, 11, 20))
    removed, weighed = (await audit_rows(storage))[-2:]
    assert removed.request == {
        "what": "lab",
        "id": row_id,
        "old": {"test": "platelets", "value": "32", "unit": "10^9/L", "date": "2026-11-21"},
        "new": None,
    }
    assert weighed.request == {
        "what": "weight",
        "id": found.patient_id,
        "old": {"weight_kg": "72", "weight_date": None},
        "new": {"weight_kg": "74", "weight_date": "2026-11-20"},
    }
    assert (removed.user_id, weighed.user_id, removed.kind, weighed.kind) == (user, user, "correction", "correction")
    async with storage.session() as session:
        assert await corrections.find(session, user, "lab", row_id) is None
    assert (await intact(storage)).intact


async def test_another_users_rows_are_never_found_nor_changed(storage: Storage):
    owner = await saved(storage, "tg:1", "RX-12", romiplostim())
    other = await saved(storage, "tg:2", "RX-40", romiplostim())
    row_id = await lab_id(storage, owner, "RX-12")
    async with storage.session() as session:
        assert await corrections.find(session, other, "lab", row_id) is None
        assert await storage.patient(session, other, "RX-12") is None
        assert await corrections.undo_last_save(session, other, "local:tg:1") is None


def _cells(row: Any) -> str:
    return json.dumps(list(row), default=str)


async def test_a_deleted_patient_is_gone_from_every_table_but_the_tombstone(storage: Storage):
    """Every table of the schema (enumerated from the metadata: a new one cannot be forgotten) is read whole
    after the deletion: nothing of the patient is left but the audit's tombstone, which holds no clinical data;
    the user's other patient and another user's patient are untouched."""
    request = romiplostim(patient={"weight_kg": float(GONE_WEIGHT)}, labs=[platelets(27, "2026-11-21")])
    user = await saved(storage, "tg:1", GONE, request)
    await saved(storage, "tg:1", "RX-30", romiplostim())
    other = await saved(storage, "tg:2", "RX-12", romiplostim())
    effect = consultation(GONE, request)
    reminders = Reminders(storage, lambda: NOW, "UTC")
    async with storage.session() as session, session.begin():
        await reminders.schedule(
            session, user, "local:tg:1", ScheduleReminders(GONE, "romiplostim", effect.response, dt.time(9)), "UTC"
        )
        occurrence = await session.scalar(select(Occurrence.id).limit(1))
        assert occurrence is not None
        session.add(
            Delivery(
                key=f"{occurrence}:send",
                occurrence_id=occurrence,
                chat_key="local:tg:1",
                text=f"Dose reminder for {GONE}",
                buttons=[],
                created_at=NOW.replace(tzinfo=None),
            )
        )
        chat = await storage.open_chat(session, "tg:1", "local:tg:1")
        state = ChatState(state="result", answers=Answers(patient_label=GONE, weight_kg=float(GONE_WEIGHT)))
        await storage.save_chat(session, chat, "local:tg:1", state.model_dump_json(exclude_defaults=True))
        patient = await storage.patient(session, user, GONE)
        assert patient is not None
    # Corrections are audited with the label too: they are erased with the rest.
    row_id = await lab_id(storage, user, GONE)
    async with storage.session() as session, session.begin():
        found = await corrections.find(session, user, "lab", row_id)
        assert found is not None
        await corrections.correct(session, user, "lab", row_id, found, {"value": "28"})

    async with storage.session() as session, session.begin():
        tombstone = await corrections.delete_patient(session, user, patient[0], GONE)

    tables = Base.metadata.sorted_tables
    assert {table.name for table in tables} >= {"patients", "labs", "doses", "reminders", "deliveries", "saves"}
    async with storage.session() as session:
        for table in tables:
            rows = (await session.execute(select(table))).all()
            for row in rows:
                cells = _cells(row)
                assert GONE not in cells, (table.name, cells)
                assert GONE_WEIGHT not in cells, (table.name, cells)
            if "patient_id" in table.c:
                assert patient[0] not in [row.patient_id for row in rows], table.name
        audit = {row.seq: row for row in (await session.execute(select(Audit.__table__))).all()}
    stone = audit[tombstone]
    assert (stone.kind, stone.user_id, stone.patient_label, stone.response) == ("tombstone", user, None, {})
    assert stone.request["patient_id"] == patient[0]
    assert stone.request["deleted"] == {
        "reminders": 1,
        "saves": 1,
        "regimens": 1,
        "doses": 1,
        "labs": 1,
        "transfusions": 0,
    }
    erased = [row for row in audit.values() if row.erased_by == tombstone]
    assert len(erased) == 2  # the recommendation and the correction
    assert stone.request["erased"] == sorted(row.seq for row in erased)
    assert all(
        (row.patient_label, row.ruleset, row.request, row.response, row.payload_salt) == (None,) * 5 for row in erased
    )
    # Untouched: the user's other patient and the other user's patient with the deleted one's label shape.
    async with storage.session() as session:
        assert set((await storage.summaries(session, user, NOW.date())).keys()) == {"RX-30"}
        assert set((await storage.summaries(session, other, NOW.date())).keys()) == {"RX-12"}
        assert await storage.load_chat(session, "local:tg:1", user) == "{}"
    assert (await intact(storage)).intact


async def test_an_erasure_that_no_tombstone_records_is_named(storage: Storage):
    user = await saved(storage, "tg:1", "RX-12", romiplostim())
    await saved(storage, "tg:1", "RX-30", romiplostim())
    async with storage.session() as session, session.begin():
        patient = await storage.patient(session, user, "RX-12")
        assert patient is not None
        tombstone = await corrections.delete_patient(session, user, patient[0], "RX-12")
    assert (await intact(storage)).intact
    table: Table = Audit.__table__  # type: ignore[assignment]
    rx30 = next(row for row in await audit_rows(storage) if row.patient_label == "RX-30")
    cleared = {"patient_label": None, "ruleset": None, "request": None, "response": None, "payload_salt": None}
    async with storage.session() as session, session.begin():  # RX-30's entry erased, naming the tombstone
        await session.execute(update(table).where(table.c.id == rx30.id).values(cleared | {"erased_by": tombstone}))
    found = await intact(storage)
    stone = next(row for row in await audit_rows(storage) if row.seq == tombstone)
    assert found.problem == (
        f"audit entry id {stone.id} (#{tombstone}): entries #{rx30.seq} name it as their tombstone but it does not "
        "list them (erased)"
    )
    async with storage.session() as session, session.begin():  # ... or naming none
        await session.execute(update(table).where(table.c.id == rx30.id).values(erased_by=None))
    found = await intact(storage)
    assert (
        found.problem == f"audit entry id {rx30.id} (#{rx30.seq}): its content was removed without a tombstone (erased)"
    )


async def test_undo_takes_back_exactly_its_save_and_is_audited(storage: Storage):
    user = await saved(storage, "tg:1", "RX-12", romiplostim())
    later = romiplostim(as_of="2026-11-29", labs=[platelets(32, "2026-11-21"), platelets(60, "2026-11-28")])
    await saved(storage, "tg:1", "RX-12", later)
    rows = await audit_rows(storage)
    async with storage.session() as session, session.begin():
        before = (await storage.summaries(session, user, NOW.date()))["RX-12"]
        undone = await corrections.undo_last_save(session, user, "local:tg:1")
    # The second save added the 2026-11-28 count (the 2026-11-21 one was on record already) and its regimen.
    assert undone == corrections.Undone("RX-12", 1, 0, 0, 0, False)
    async with storage.session() as session:
        after = (await storage.summaries(session, user, NOW.date()))["RX-12"]
        history = await storage.history(session, user, "RX-12")
    assert [(lab.value, lab.date) for lab in after.labs] == [("32", dt.date(2026, 11, 21))]
    assert (after.dose_amount, after.dose_since) == ("4", dt.date(2026, 11, 22))  # the first save's increase
    assert before.labs != after.labs
    last = (await audit_rows(storage))[-1]
    assert (last.kind, last.refers_to, last.user_id, last.patient_label) == ("undo", rows[-1].seq, user, "RX-12")
    assert last.request == {"save": 2, "labs": 1, "doses": 0, "transfusions": 0, "reminders": 0}
    assert history is not None
    assert [text for _, text in history[1] if text.startswith("recommendation")] == [
        "recommendation: increase 4 mcg/kg (romiplostim.increase)"  # the undone one is not shown
    ]
    async with storage.session() as session, session.begin():
        first = await corrections.undo_last_save(session, user, "local:tg:1")
        assert first == corrections.Undone("RX-12", 1, 1, 0, 0, True)  # the save that created the patient
        assert await corrections.undo_last_save(session, user, "local:tg:1") is None
        assert await storage.patient(session, user, "RX-12") is None
    assert (await intact(storage)).intact


def _migrate(path: Path, revision: str) -> None:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


async def _old_audit(path: Path) -> None:
    """A database at 0007 with two entries chained in 0003's format."""
    _migrate(path, "0002")
    connection = sqlite3.connect(path)
    connection.execute("insert into users (id, external_id, created_at) values (1, 'tg:1', '2026-11-01')")
    request = json.dumps(request_json(DoseRequest.model_validate(romiplostim())))
    response = json.dumps(recommend(DoseRequest.model_validate(romiplostim())).model_dump(mode="json"))
    for day in (20, 21):
        connection.execute(
            "insert into audit (user_id, patient_label, at, ruleset, request, response) "
            "values (1, 'RX-1', ?, 'romiplostim/us', ?, ?)",
            (f"2026-11-{day} 09:00:00.000000", request, response),
        )
    connection.commit()
    connection.close()
    _migrate(path, "0007")


@sqlite_only
async def test_migration_0010_rechains_the_audit_with_the_clinical_part_beside_it(tmp_path: Path):
    path = tmp_path / "old.db"
    await _old_audit(path)
    old = sqlite3.connect(path).execute("select hash from audit order by id").fetchall()
    storage = await open_storage(f"sqlite:///{path}")
    try:
        verdict = await intact(storage)
        rows = await audit_rows(storage)
        assert (verdict.intact, verdict.entries) == (True, 2)
        assert [row.kind for row in rows] == ["recommendation", "recommendation"]
        assert [row.hash for row in rows] != [hash_ for (hash_,) in old]
        assert all(len(row.payload_salt) == 32 and row.patient_label == "RX-1" for row in rows)
    finally:
        await storage.close()


@sqlite_only
async def test_migration_0010_refuses_to_rechain_a_broken_chain(tmp_path: Path):
    path = tmp_path / "broken.db"
    await _old_audit(path)
    connection = sqlite3.connect(path)
    connection.execute("update audit set patient_label = 'RX-2' where id = 1")
    connection.commit()
    connection.close()
    with pytest.raises(RuntimeError, match=r"audit entry id 1 \(#1\) does not verify"):
        await open_storage(f"sqlite:///{path}")
    version = sqlite3.connect(path).execute("select version_num from alembic_version").fetchone()
    assert version == ("0007",)  # nothing of 0010 was kept
