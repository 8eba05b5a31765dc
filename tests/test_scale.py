"""Cost independent of the record's size (issue 12): pages, the typed-label lookup, duplicates skipped
by the unique keys, and the indexes the queries use."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, text

from bot.limits import MAX_REPLY, units
from bot.service import ChatService
from bot.storage import Storage, open_storage
from bot.storage.tables import Dose, LabRow, PatientRow, TransfusionRow
from core import recommend
from core.models import DoseRequest
from flows import listings
from flows.buttons import PageButton, PageList, decode, page_button
from flows.replies import AuditRecommendation, Reply, SaveConsultation, request_json
from flows.state import Answers, ChatState, LabAnswer, LabRecord, PatientSummary
from tests.helpers import hemoglobin, luspatercept, platelets, romiplostim

TODAY = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
USER = "tg:501"


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    opened = await open_storage(f"sqlite:///{tmp_path}/scale.db")
    yield opened
    await opened.close()


def consultation(label: str, request: dict) -> SaveConsultation:  # type: ignore[type-arg]
    parsed = DoseRequest.model_validate(request)
    return SaveConsultation(label, parsed, recommend(parsed))


async def add_patients(storage: Storage, labels: list[str], external_id: str = USER) -> int:
    """Bare patient rows (no regimen), as many as a test needs, in one statement."""
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, external_id)
        now = dt.datetime(2026, 11, 1)
        await session.execute(insert(PatientRow), [{"user_id": user, "label": x, "created_at": now} for x in labels])
    return user


def labels_of(reply: Reply) -> list[str]:
    return [line[2:] for line in reply.text.splitlines() if line.startswith("• ")]


def buttons_of(reply: Reply) -> dict[str, str]:
    return {button.label: button.data for row in reply.buttons for button in row}


# --- the page button ---------------------------------------------------------------------------


def test_page_buttons_encode_and_decode_and_refuse_what_is_not_one():
    assert PageButton(PageList.PATIENTS, 2).encode() == "pg:p:2"
    assert PageButton(PageList.HISTORY, 3, "RX-12").encode() == "pg:h:3:RX-12"
    assert decode("pg:p:2") == PageButton(PageList.PATIENTS, 2)
    assert page_button("pg:h:40:bed 4") == PageButton(PageList.HISTORY, 40, "bed 4")
    for bad in ("pg:p:0", "pg:p:-1", "pg:p:x", "pg:p:2:RX-1", "pg:h:2", "pg:h:2:", "pg:q:1", "pg:p:" + "9" * 19):
        assert decode(bad) is None, bad
    with pytest.raises(ValueError, match="a label with HISTORY"):
        PageButton(PageList.HISTORY, 1)


# --- /patients in pages --------------------------------------------------------------------------


async def test_patient_pages_split_at_the_page_size_and_a_page_past_the_end_is_the_last(storage: Storage):
    labels = [f"P-{n:03d}" for n in range(1, 86)]  # 85: pages of 40, 40 and 5
    user = await add_patients(storage, labels)
    async with storage.session() as session:
        first = await storage.patient_page(session, user, 1, 40)
        last = await storage.patient_page(session, user, 3, 40)
        past = await storage.patient_page(session, user, 9, 40)
        before = await storage.patient_page(session, user, 0, 40)
    assert (first.page, first.pages, first.total) == (1, 3, 85)
    assert [label for label, _ in first.entries] == labels[:40]
    assert [label for label, _ in last.entries] == labels[80:]
    assert past == last  # a stale button past the end shows the last page
    assert before == first
    assert all(drug is None for _, drug in first.entries)


async def test_patients_reply_pages_with_previous_and_next_and_a_page_line(tmp_path: Path):
    storage = await open_storage(f"sqlite:///{tmp_path}/pages.db")
    service = ChatService(storage, clock=lambda: NOW)
    chat = "tg:501:501"
    labels = [f"P-{n:03d}" for n in range(1, 86)]
    await add_patients(storage, labels)
    try:
        [first] = await service.handle(USER, chat, "/patients")
        assert first.text.splitlines()[0] == "Your patients:"
        assert labels_of(first) == labels[:40]
        assert first.text.splitlines()[-2:] == [
            "Page 1 of 3 (85 patients).",
            "Type /history LABEL to see one patient's record.",
        ]
        assert buttons_of(first) == {"Next ▶": "pg:p:2", "New consultation": "new"}
        [second] = await service.handle(USER, chat, button="pg:p:2")
        assert labels_of(second) == labels[40:80]
        assert "Page 2 of 3 (85 patients)." in second.text
        assert buttons_of(second) == {"◀ Previous": "pg:p:1", "Next ▶": "pg:p:3", "New consultation": "new"}
        [third] = await service.handle(USER, chat, button="pg:p:3")
        assert labels_of(third) == labels[80:]
        assert buttons_of(third) == {"◀ Previous": "pg:p:2", "New consultation": "new"}
        assert units(third.text) <= MAX_REPLY
        # A patient added since the page was shown (sorting first): page 3 is read afresh, one label on.
        await add_patients(storage, ["A-000"])
        [stale] = await service.handle(USER, chat, button="pg:p:3")
        assert labels_of(stale) == labels[79:]
        assert "Page 3 of 3 (86 patients)." in stale.text
        # A page that no longer exists (from a longer list of another release): the last page.
        [past] = await service.handle(USER, chat, button="pg:p:7")
        assert past.text == stale.text
        # Another user's pages are theirs alone.
        [other] = await service.handle("tg:502", "tg:502:502", button="pg:p:2")
        assert other.text.startswith("You have no saved patients yet.")
    finally:
        await storage.close()


async def test_ten_thousand_patients_come_back_as_one_message_per_page(tmp_path: Path):
    storage = await open_storage(f"sqlite:///{tmp_path}/many.db")
    service = ChatService(storage, clock=lambda: NOW)
    await add_patients(storage, [f"LONGER-LABEL-{n:05d}" for n in range(10_000)])
    try:
        replies = await service.handle(USER, "tg:501:501", "/patients")
        assert len(replies) == 1
        assert units(replies[0].text) <= MAX_REPLY
        assert "Page 1 of 250 (10,000 patients)." in replies[0].text
        [last] = await service.handle(USER, "tg:501:501", button="pg:p:250")
        assert labels_of(last) == [f"LONGER-LABEL-{n:05d}" for n in range(9_960, 10_000)]
    finally:
        await storage.close()


# --- /history in pages ---------------------------------------------------------------------------


async def _record_with_many_entries(storage: Storage) -> int:
    """RX-12 saved twice (doses, results, audits), then 70 more counts and 5 transfusions, some on the
    same dates as the saved entries (the order's ties)."""
    first = consultation("RX-12", romiplostim(labs=[platelets(32, "2026-11-21"), hemoglobin(9.4, "2026-11-21")]))
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, USER)
        await storage.save_consultation(session, user, first)
        await storage.audit(session, user, AuditRecommendation("RX-12", first.request, first.response))
        await storage.audit(session, user, AuditRecommendation("RX-12", first.request, first.response))
        patient = await session.scalar(select(PatientRow.id).where(PatientRow.label == "RX-12"))
        now = dt.datetime(2026, 11, 22)
        labs = [
            {"patient_id": patient, "test": "platelets", "value": str(n), "unit": "10^9/L", "recorded_at": now}
            | {"date": TODAY - dt.timedelta(days=1 + n // 2)}
            for n in range(70)
        ]
        await session.execute(insert(LabRow), labs)
        transfusions = [
            {"patient_id": patient, "date": TODAY - dt.timedelta(days=n * 7), "units": "2"} for n in range(1, 6)
        ]
        await session.execute(insert(TransfusionRow), transfusions)
    return user


async def test_history_pages_are_the_whole_history_cut_in_order(storage: Storage):
    user = await _record_with_many_entries(storage)
    async with storage.session() as session:
        whole = await storage.history(session, user, "RX-12")
        assert whole is not None
        _, entries = whole
        assert len(entries) == 1 + 2 + 70 + 5 + 2  # dose, saved results, counts, transfusions, audits
        pages = [await storage.history_page(session, user, "rx-12", page, 30) for page in (1, 2, 3, 4)]
    assert [found[0] for found in pages if found] == ["RX-12"] * 4  # found whatever the case
    got = [found[1] for found in pages if found]
    assert [(p.page, p.pages, p.total) for p in got] == [(1, 3, 80), (2, 3, 80), (3, 3, 80), (3, 3, 80)]
    assert got[0].entries == entries[:30]
    assert got[1].entries == entries[30:60]
    assert got[2].entries == entries[60:]
    assert got[3] == got[2]  # past the end: the last page
    # Newest first; on a date, recommendations above the results and doses.
    assert entries[:3] == [
        (dt.date(2026, 11, 22), "recommendation: increase 4 mcg/kg (romiplostim.increase)"),
        (dt.date(2026, 11, 22), "recommendation: increase 4 mcg/kg (romiplostim.increase)"),
        (dt.date(2026, 11, 21), "platelets 1 10^9/L"),
    ]


async def test_history_reply_pages_with_buttons_that_carry_the_label(tmp_path: Path):
    storage = await open_storage(f"sqlite:///{tmp_path}/history.db")
    service = ChatService(storage, clock=lambda: NOW)
    chat = "tg:501:501"
    try:
        await _record_with_many_entries(storage)
        [first] = await service.handle(USER, chat, "/history rx-12")
        lines = first.text.splitlines()
        assert lines[0] == "Record of RX-12 (newest first):"
        assert len(lines) == 1 + 30 + 1
        assert lines[-1] == "Page 1 of 3 (80 entries; Next goes back in time)."
        assert buttons_of(first) == {"Next ▶": "pg:h:2:RX-12"}
        [last] = await service.handle(USER, chat, button="pg:h:3:RX-12")
        assert last.text.splitlines()[-1] == "Page 3 of 3 (80 entries; Next goes back in time)."
        assert len(last.text.splitlines()) == 1 + 20 + 1
        assert buttons_of(last) == {"◀ Previous": "pg:h:2:RX-12"}
        # Another user's page button finds nothing of this patient.
        [other] = await service.handle("tg:502", "tg:502:502", button="pg:h:2:RX-12")
        assert other.text == "You have no patient labelled 'RX-12'. /patients lists your labels."
    finally:
        await storage.close()


def test_a_short_history_is_one_page_with_no_page_line_or_buttons():
    reply = listings.history("RX-1", [(TODAY, "platelets 32 10^9/L")])
    assert reply == Reply("Record of RX-1 (newest first):\n2026-11-22 platelets 32 10^9/L")


# --- the typed label -----------------------------------------------------------------------------


async def test_a_typed_label_is_found_exact_else_the_one_match_ignoring_case(storage: Storage):
    user = await add_patients(storage, ["RX-12", "bed 4", "AB-1", "ab-1"])
    other = await add_patients(storage, ["HB-3"], external_id="tg:502")
    async with storage.session() as session:
        assert await storage.find_label(session, user, "RX-12") == "RX-12"
        assert await storage.find_label(session, user, " rx-12 ") == "RX-12"
        assert await storage.find_label(session, user, "BED 4") == "bed 4"
        assert await storage.find_label(session, user, "ab-1") == "ab-1"  # exact wins among case variants
        assert await storage.find_label(session, user, "Ab-1") is None  # two match ignoring case: neither
        assert set(await storage.labels_like(session, user, "Ab-1")) == {"AB-1", "ab-1"}  # the question's matches
        assert await storage.labels_like(session, other, "rx-12") == []
        assert await storage.find_label(session, user, "NEW-1") is None
        assert await storage.find_label(session, user, "HB-3") is None  # another user's
        assert await storage.find_label(session, other, "hb-3") == "HB-3"
        assert await storage.first_labels(session, user, 3) == ["AB-1", "RX-12", "ab-1"]


async def test_the_patient_question_offers_twelve_and_finds_a_typed_label_beyond_them(tmp_path: Path):
    storage = await open_storage(f"sqlite:///{tmp_path}/typed.db")
    service = ChatService(storage, clock=lambda: NOW)
    chat = "tg:501:501"
    try:
        async with storage.session() as session, session.begin():
            user = await storage.user_id(session, USER)
            await storage.save_consultation(session, user, consultation("ZZ-99", romiplostim()))
        await add_patients(storage, [f"P-{n:03d}" for n in range(100)])
        await service.handle(USER, chat, "/new")
        await service.handle(USER, chat, button="v:romiplostim")
        [question] = await service.handle(USER, chat, button="v:us")
        assert [b.label for row in question.buttons for b in row][:12] == [f"P-{n:03d}" for n in range(12)]
        assert "ZZ-99" not in question.text
        # ZZ-99 is not among the buttons, but typed (any case) it is the saved patient, record and all.
        [weight] = await service.handle(USER, chat, "zz-99")
        assert weight.text.startswith("Body weight in kg?")
        assert any(b.label.startswith("Keep 72 kg") for row in weight.buttons for b in row)
    finally:
        await storage.close()


# --- saving: duplicates skipped by the unique keys ------------------------------------------------


async def _count(storage: Storage, model: type) -> int:
    async with storage.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_saving_skips_known_results_doses_and_transfusions_by_the_unique_keys(storage: Storage):
    labs = [platelets(32, "2026-11-21"), platelets(32, "2026-11-21"), hemoglobin(9.4, "2026-11-21")]
    first = consultation("RX-12", romiplostim(labs=labs))
    async with storage.session() as session, session.begin():
        user = await storage.user_id(session, USER)
        await storage.save_consultation(session, user, first)
    assert await _count(storage, LabRow) == 2  # the count given twice in one request: once
    assert await _count(storage, Dose) == 1
    more = [*labs, platelets(40, "2026-11-22"), platelets(32, "2026-11-22")]
    async with storage.session() as session, session.begin():
        await storage.save_consultation(session, user, first)  # all known: nothing added
        await storage.save_consultation(session, user, consultation("RX-12", romiplostim(labs=more)))
    assert await _count(storage, LabRow) == 4  # the two new ones only (same value, another date: new)
    assert await _count(storage, Dose) == 1  # the same last dose each time
    burden = luspatercept(transfusions=[{"date": "2026-11-01", "units": 2}, {"date": "2026-11-01", "units": 2}])
    for _ in range(2):
        async with storage.session() as session, session.begin():
            await storage.save_consultation(session, user, consultation("L-1", burden))
    assert await _count(storage, TransfusionRow) == len({(t["date"], t["units"]) for t in burden["transfusions"]})


# --- the indexes the queries use (SQLite's plan) ---------------------------------------------------


async def test_the_record_size_queries_are_searches_of_their_indexes(storage: Storage):
    plans = {
        "select id, label from patients where user_id = 1 and lower(patients.label) = 'x'": (
            "ix_patients_user_label_lower (user_id=? AND <expr>=?)"
        ),
        "select label from patients where user_id = 1 order by label limit 12": "sqlite_autoindex_patients_1",
        "select test, value from labs where patient_id in (1) and date >= '2026-07-25' order by date, id": (
            "ix_labs_patient_date (patient_id=? AND date>?)"
        ),
        "select date, id from labs where patient_id = 1 order by date desc, id desc limit 30": "ix_labs_patient_date",
        "select given_on, id from doses where patient_id = 1 order by given_on desc, id desc limit 30": (
            "ix_doses_patient_given_on"
        ),
    }
    async with storage.session() as session:
        for query, index in plans.items():
            plan = " ".join(str(row[3]) for row in await session.execute(text(f"explain query plan {query}")))
            assert "SEARCH" in plan, (query, plan)
            assert index in plan, (query, plan)
            assert "TEMP B-TREE" not in plan, (query, plan)


# --- the chat state: the record's results written once ----------------------------------------------

_LAB = st.builds(
    LabRecord,
    test=st.sampled_from(["platelets", "hemoglobin"]),
    value=st.sampled_from(["32", "45.5", "8.9", "120", "0.5"]),
    unit=st.sampled_from(["10^9/L", "g/dL"]),
    date=st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31)),
)


@settings(max_examples=150, deadline=None)
@given(labs=st.lists(_LAB, max_size=12, unique_by=lambda lab: (lab.test, lab.date, lab.value, lab.unit)))
def test_a_chat_state_restores_exactly_with_the_record_s_results_written_once(labs: list[LabRecord]):
    """Whatever the record and whichever of its results the consultation pre-filled (or others)."""
    record = PatientSummary(label="RX-12", labs=tuple(labs))
    prefilled = [LabAnswer.model_validate(lab.model_dump()) for lab in labs if lab.test == "platelets"]
    other = [LabAnswer(test="platelets", value=Decimal("7"), unit="10^9/L", date=dt.date(2026, 6, 1))]
    for history in (prefilled, prefilled[1:], [*prefilled, *other], other, []):
        chat = ChatState(state="weight", answers=Answers(patient_label="RX-12", record=record, history_labs=history))
        saved = chat.model_dump_json(exclude_defaults=True)
        assert ChatState.model_validate_json(saved) == chat
        assert chat.model_dump() == ChatState.model_validate_json(saved).model_dump()


def test_the_saved_state_holds_a_pre_filled_result_once():
    labs = tuple(
        LabRecord(test=test, value=str(20 + n), unit="10^9/L" if test == "platelets" else "g/dL", date=day)
        for n in range(100)
        for test, day in (("platelets", TODAY - dt.timedelta(days=n)), ("hemoglobin", TODAY - dt.timedelta(days=n)))
    )
    record = PatientSummary(label="RX-12", drug="romiplostim", labs=tuple(sorted(labs, key=lambda lab: lab.date)))
    history = [LabAnswer.model_validate(lab.model_dump()) for lab in record.labs if lab.test == "platelets"]
    chat = ChatState(state="weight", answers=Answers(patient_label="RX-12", record=record, history_labs=history))
    saved = chat.model_dump_json(exclude_defaults=True)
    assert saved.count('"2026-11-22"') == 2  # that day's count once (in history_labs), its haemoglobin once
    assert ChatState.model_validate_json(saved) == chat


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.sampled_from(["32", "45.5", "120", "8", "250.25"]), min_size=1, max_size=8),
    typed=st.sampled_from([Decimal("30"), Decimal("30.5"), Decimal("45.5")]),
)
def test_a_chat_state_after_a_recommendation_restores_exactly_its_request(values: list[str], typed: Decimal):
    """The request's results that the history holds are written once, and read back to the same JSON."""
    history = [
        LabAnswer(test="platelets", value=Decimal(v), unit="10^9/L", date=dt.date(2026, 11, 1) + dt.timedelta(days=n))
        for n, v in enumerate(values)
    ]
    labs = [{"test": "platelets", "value": lab.value, "unit": lab.unit, "date": str(lab.date)} for lab in history]
    new = {"test": "platelets", "value": typed, "unit": "10^9/L", "date": "2026-11-21"}
    request = request_json(DoseRequest.model_validate(romiplostim(labs=[*labs, new])))
    record = PatientSummary(
        label="RX-12", labs=tuple(LabRecord.model_validate(lab.model_dump(mode="json")) for lab in history)
    )
    for kept in (history, history[1:], []):
        answers = Answers(patient_label="RX-12", record=record, history_labs=kept)
        chat = ChatState(state="result", answers=answers, request=request, response={"action": "continue"})
        saved = chat.model_dump_json(exclude_defaults=True)
        assert ChatState.model_validate_json(saved) == chat
        assert json.dumps(ChatState.model_validate_json(saved).request) == json.dumps(request)
        if kept is history:  # the first result once (history_labs), beside the request's `since`
            assert saved.count('"2026-11-01"') == 1 + 1
