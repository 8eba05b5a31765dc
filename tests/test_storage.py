"""Storage: migrations, per-user isolation, what a saved consultation records, the audit."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bot.storage import Storage, open_storage
from bot.storage.tables import Audit, Regimen
from core import recommend
from core.models import DoseRequest
from flows.replies import AuditRecommendation, SaveConsultation
from tests.helpers import hemoglobin, luspatercept, platelets, romiplostim

TODAY = dt.date(2026, 11, 22)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    opened = await open_storage(f"sqlite:///{tmp_path}/test.db")
    yield opened
    await opened.close()


def consultation(label: str, request: dict) -> SaveConsultation:  # type: ignore[type-arg]
    parsed = DoseRequest.model_validate(request)
    response = recommend(parsed).model_dump(mode="json")
    return SaveConsultation(label, parsed.model_dump(mode="json", exclude_defaults=True), response)


@pytest.mark.parametrize("driver", ["sqlite", "sqlite+aiosqlite"])
async def test_migrations_are_applied_once_and_reopening_keeps_data(tmp_path: Path, driver: str):
    url = f"{driver}:///{tmp_path}/again.db"
    first = await open_storage(url)
    async with first.session() as session, session.begin():
        await first.user_id(session, "tg:1")
    await first.close()
    second = await open_storage(url)
    async with second.session() as session:
        version = await session.scalar(text("select version_num from alembic_version"))
        assert version == "0003"
        assert await second.user_id(session, "tg:1") == 1
    await second.close()


async def test_a_user_sees_only_their_own_patients(storage: Storage):
    async with storage.session() as session, session.begin():
        alice = await storage.user_id(session, "tg:1001")
        bob = await storage.user_id(session, "tg:1002")
        await storage.save_consultation(session, alice, consultation("RX-12", romiplostim()))
    async with storage.session() as session:
        assert await storage.patient_labels(session, alice) == [("RX-12", "romiplostim")]
        assert await storage.patient_labels(session, bob) == []
        assert await storage.summaries(session, bob, TODAY) == {}
        assert await storage.summaries(session, bob, TODAY, labels=["RX-12"]) == {}
        assert await storage.history(session, bob, "RX-12") is None
        assert await storage.load_chat(session, "tg:1:1001", bob) is None


async def test_the_same_label_for_two_users_is_two_patients(storage: Storage):
    async with storage.session() as session, session.begin():
        alice = await storage.user_id(session, "tg:1001")
        bob = await storage.user_id(session, "tg:1002")
        await storage.save_consultation(session, alice, consultation("P1", romiplostim()))
        await storage.save_consultation(session, bob, consultation("P1", romiplostim(patient={"weight_kg": 50})))
    async with storage.session() as session:
        assert (await storage.summaries(session, alice, TODAY))["P1"].weight_kg == "72"
        assert (await storage.summaries(session, bob, TODAY))["P1"].weight_kg == "50"


async def test_an_increase_is_recorded_as_the_new_dose_from_its_date(storage: Storage):
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        await storage.save_consultation(session, user, consultation("RX-12", romiplostim()))
    async with storage.session() as session:
        summary = (await storage.summaries(session, user, TODAY))["RX-12"]
    assert (summary.drug, summary.dose_amount, summary.dose_since, summary.on_hold) == (
        "romiplostim",
        "4",
        dt.date(2026, 11, 22),
        False,
    )
    assert summary.last_given == dt.date(2026, 11, 15)
    assert summary.weight_kg == "72"
    assert [(lab.value, lab.date) for lab in summary.labs] == [("32", dt.date(2026, 11, 21))]


async def test_a_hold_keeps_the_dose_and_marks_the_hold(storage: Storage):
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        await storage.save_consultation(
            session, user, consultation("RX-1", romiplostim(labs=[platelets(420, "2026-11-21")]))
        )
    async with storage.session() as session:
        summary = (await storage.summaries(session, user, TODAY))["RX-1"]
    assert (summary.dose_amount, summary.dose_since, summary.on_hold) == ("3", dt.date(2026, 11, 1), True)


async def test_a_discontinuation_ends_the_regimen_but_keeps_the_history(storage: Storage):
    stop = luspatercept("mds", adverse_reaction={"grade": 3, "hypersensitivity": True})
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        await storage.save_consultation(session, user, consultation("L-1", stop))
    async with storage.session() as session:
        assert await session.scalar(select(func.count()).select_from(Regimen)) == 0
        found = await storage.history(session, user, "l-1")  # found whatever the case, as in the chat
        assert found is not None
        label, history = found
        assert label == "L-1"
        assert (dt.date(2026, 11, 21), "hemoglobin 8.9 g/dL") in history
        assert (dt.date(2026, 11, 8), "transfusion 1 units") in history


async def test_saving_twice_does_not_duplicate_results_or_doses(storage: Storage):
    effect = consultation("RX-12", romiplostim(labs=[platelets(32, "2026-11-21"), hemoglobin(9.4, "2026-11-21")]))
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        await storage.save_consultation(session, user, effect)
        await storage.save_consultation(session, user, effect)
    async with storage.session() as session:
        history = await storage.history(session, user, "RX-12")
    assert history == (
        "RX-12",
        [
            (dt.date(2026, 11, 21), "hemoglobin 9.4 g/dL"),  # same date: the later recorded first
            (dt.date(2026, 11, 21), "platelets 32 10^9/L"),
            (dt.date(2026, 11, 15), "dose given: romiplostim 3 mcg/kg"),
        ],
    )


async def test_every_recommendation_is_audited_append_only(storage: Storage):
    effect = consultation("RX-12", romiplostim())
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, "tg:1")
        for _ in range(3):
            await storage.audit(session, user, AuditRecommendation("RX-12", effect.request, effect.response))
    async with storage.session() as session:
        rows = list(await session.scalars(select(Audit)))
    assert len(rows) == 3
    assert {row.ruleset for row in rows} == {"romiplostim/us"}
    assert rows[0].request["current_dose"]["amount"] == 3
    assert rows[0].response["action"] == "increase"


async def test_the_embedded_sqlite_runs_in_the_event_loop_and_commits_to_disk(tmp_path: Path):
    """No driver thread, a committed write visible to another process's reader, a failed one undone."""
    import sqlite3
    import threading

    before = threading.active_count()
    storage = await open_storage(f"sqlite:///{tmp_path}/inloop.db")
    async with storage.session() as session, session.begin():
        await storage.user_id(session, "tg:7")

    async def failing_update() -> None:
        async with storage.session() as session, session.begin():
            await storage.user_id(session, "tg:8")
            raise RuntimeError("the update failed")

    with pytest.raises(RuntimeError):
        await failing_update()
    assert threading.active_count() == before
    reader = sqlite3.connect(tmp_path / "inloop.db")
    assert reader.execute("select external_id from users").fetchall() == [("tg:7",)]
    reader.close()
    await storage.close()
