"""Every database read and write of the assistant. Each query is scoped to the asking user.

SQLite (the embedded default) runs in WAL mode with synchronous=NORMAL: a commit survives a
crash of the process, and a commit that wrote a patient's record, an audit entry, a reminder or a
delivery claim is flushed to the disk before it returns (bot.storage.inloop), so it survives a
power cut too; a chat's place in a conversation may lose its last moments. The database file
(and so its -wal and -shm files, which SQLite creates with the database's permissions) is created
0600. With `sqlite+aiosqlite://` every commit is synchronous=FULL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, bindparam, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.storage import audit_chain, pages, records, trend
from bot.storage.files import create_private
from bot.storage.inloop import InLoopEngine, session_factory
from bot.storage.pages import Page
from bot.storage.records import _now, _or_ignore
from bot.storage.schema import MIGRATIONS as MIGRATIONS  # where the tests find the migrations
from bot.storage.schema import upgrade_to_head
from bot.storage.session import DbEngine, DbSession
from bot.storage.tables import Audit, ConversationRow, Dose, LabRow, PatientRow, Regimen, TransfusionRow, User
from flows.replies import (
    AuditRecommendation,
    LabRecord,
    PatientSummary,
    SaveConsultation,
    TransfusionRecord,
    request_json,
    response_json,
)
from flows.trend import TrendRecord

RECORD_HORIZON_DAYS = 120  # how far back a follow-up visit pre-fills results and transfusions


class ChatRow(NamedTuple):
    user_id: int
    time_zone: str | None
    state: str | None  # None: no conversation saved for this chat yet


# The statements of every update, built once on the Core tables: building and caching an ORM
# statement per call cost more than running it.
_USERS, _CONVERSATIONS, _PATIENTS, _REGIMENS, _DOSES, _LABS, _TRANSFUSIONS, _AUDIT = (
    cast(Table, model.__table__)
    for model in (User, ConversationRow, PatientRow, Regimen, Dose, LabRow, TransfusionRow, Audit)
)
_OPEN_CHAT = (
    select(_USERS.c.id, _USERS.c.time_zone, _CONVERSATIONS.c.state)
    .outerjoin(
        _CONVERSATIONS,
        (_CONVERSATIONS.c.chat_key == bindparam("chat_key")) & (_CONVERSATIONS.c.user_id == _USERS.c.id),
    )
    .where(_USERS.c.external_id == bindparam("external_id"))
)
_UPDATE_CHAT = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.chat_key == bindparam("the_chat"), _CONVERSATIONS.c.user_id == bindparam("the_user"))
    .values(state=bindparam("state"), updated_at=bindparam("updated_at"))
)

# A typed label, found by the index on (user_id, lower(label)); the exact one preferred among its case variants.
_BY_LABEL = select(_PATIENTS.c.id, _PATIENTS.c.label).where(
    _PATIENTS.c.user_id == bindparam("user_id"), func.lower(_PATIENTS.c.label) == bindparam("lowered")
)
_FIRST_LABELS = (
    select(_PATIENTS.c.label)
    .where(_PATIENTS.c.user_id == bindparam("user_id"))
    .order_by(_PATIENTS.c.label)
    .limit(bindparam("limit"))
)
_LAST_GIVEN = select(func.max(_DOSES.c.given_on)).where(
    _DOSES.c.patient_id == bindparam("patient_id"),
    _DOSES.c.drug == bindparam("drug"),
    _DOSES.c.status == bindparam("status"),
)


def _upsert_chat(session: DbSession) -> Any:
    """The chat's first save, or its state replaced if another process saved it first (its own row only)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_CONVERSATIONS)
    return statement.on_conflict_do_update(
        index_elements=[_CONVERSATIONS.c.chat_key],
        set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
        where=_CONVERSATIONS.c.user_id == statement.excluded.user_id,
    )


def _migrate(connection: Connection) -> None:
    upgrade_to_head(connection)  # Alembic is imported only when the schema is not at head


async def open_storage(url: str) -> Storage:
    """Connect, bring the schema to the newest migration, and return the storage.

    Statement parameters are never shown in errors (they can hold what users typed), so a logged
    database fault carries no patient data.

    A plain `sqlite:///path` runs SQLite synchronously in the event loop (bot.storage.inloop); any
    other URL, `sqlite+aiosqlite:///path` included, runs on SQLAlchemy's async engine.
    """
    sqlite = url.startswith("sqlite")
    path = url.split("///", 1)[1] if sqlite and "///" in url else ""
    if path and path != ":memory:" and not path.startswith("file:"):
        # The in-loop engine opens `path` as written; SQLAlchemy's aiosqlite dialect drops a ?query.
        file = Path(path if url.startswith("sqlite:") else path.split("?", 1)[0]).expanduser()
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        create_private(file)  # before SQLite creates it 0644 (its -wal and -shm copy its mode)
    # Every session here ends its transaction itself (commit or rollback), so returning a SQLite
    # connection to the pool needs no extra ROLLBACK (with aiosqlite, a thread hop).
    reset: dict[str, Any] = {"pool_reset_on_return": None} if sqlite else {}
    engine: DbEngine
    if url.startswith("sqlite:"):
        engine = InLoopEngine(path or ":memory:", hide_parameters=True, **reset)
    else:
        from sqlalchemy.ext.asyncio import create_async_engine  # the asyncio bridge: only off SQLite

        engine = create_async_engine(url, hide_parameters=True, **reset)
    if sqlite:
        full = not url.startswith("sqlite:")  # aiosqlite: no per-commit flush there, so FULL throughout
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas_full if full else _sqlite_pragmas)
    async with engine.begin() as connection:
        await connection.run_sync(_migrate)
    return Storage(engine)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, synchronous: str = "NORMAL") -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_pragmas_full(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record, "FULL")


class Storage:
    def __init__(self, engine: DbEngine) -> None:
        self.engine = engine
        self.session: Callable[[], DbSession] = session_factory(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    # --- users and conversations -------------------------------------------------------------

    async def user_id(self, session: DbSession, external_id: str) -> int:
        found: int | None = await session.scalar(select(_USERS.c.id).where(_USERS.c.external_id == external_id))
        if found is not None:
            return found
        # Insert-or-ignore, then read: two processes meeting a new user at once (`hemadose chat --user`
        # started twice) both get the one row instead of an IntegrityError in the second.
        values = {"external_id": external_id, "created_at": _now()}
        await session.execute(_or_ignore(session, _USERS).values(values))
        created = await session.scalar(select(_USERS.c.id).where(_USERS.c.external_id == external_id))
        assert created is not None  # inserted now, or by the other process
        return int(created)

    async def load_chat(self, session: DbSession, chat_key: str, user_id: int) -> str | None:
        return await session.scalar(
            select(ConversationRow.state).where(
                ConversationRow.chat_key == chat_key, ConversationRow.user_id == user_id
            )
        )

    async def open_chat(self, session: DbSession, external_id: str, chat_key: str) -> ChatRow:
        """The user (created on first contact), their time zone and this chat's saved state: one query."""
        row = (await session.execute(_OPEN_CHAT, {"external_id": external_id, "chat_key": chat_key})).first()
        if row is None:
            return ChatRow(await self.user_id(session, external_id), None, None)
        return ChatRow(row[0], row[1], row[2])

    async def save_chat(self, session: DbSession, chat: ChatRow, chat_key: str, state: str) -> None:
        """One statement: the state as it is after this update."""
        if chat.state is None:  # first save; the other process's first save may have come in between
            values = {"chat_key": chat_key, "user_id": chat.user_id, "state": state, "updated_at": _now()}
            await session.execute(_upsert_chat(session).values(values))
        elif state != chat.state:
            values = {"the_chat": chat_key, "the_user": chat.user_id, "state": state, "updated_at": _now()}
            await session.execute(_UPDATE_CHAT, values)

    # --- patients ------------------------------------------------------------------------------

    async def _patient_by_label(self, session: DbSession, user_id: int, label: str) -> tuple[int, str] | None:
        """As typed: the exact label, else the one label that matches ignoring case (as the chat does).

        One lookup by the index on (user_id, lower(label)): the user's other patients are not read.
        """
        rows = (await session.execute(_BY_LABEL, {"user_id": user_id, "lowered": label.lower()})).all()
        exact = [(row[0], row[1]) for row in rows if row[1] == label]
        if exact:
            return exact[0]
        return (rows[0][0], rows[0][1]) if len(rows) == 1 else None

    async def patient(self, session: DbSession, user_id: int, label: str) -> tuple[int, str] | None:
        """The user's patient for a typed label (exact, else the one matching ignoring case): (id, label)."""
        return await self._patient_by_label(session, user_id, label.strip())

    async def labels_like(self, session: DbSession, user_id: int, typed: str) -> list[str]:
        """Every label of the user's that is `typed` ignoring case (by the same index)."""
        rows = await session.execute(_BY_LABEL, {"user_id": user_id, "lowered": typed.strip().lower()})
        return [row[1] for row in rows]

    async def find_label(self, session: DbSession, user_id: int, typed: str) -> str | None:
        """The user's label for `typed` (exact, else the one matching ignoring case), or None."""
        found = await self._patient_by_label(session, user_id, typed.strip())
        return found[1] if found is not None else None

    async def first_labels(self, session: DbSession, user_id: int, limit: int) -> list[str]:
        """The first `limit` labels in label order (the patient question's buttons), by the (user_id, label) key."""
        return list(await session.scalars(_FIRST_LABELS, {"user_id": user_id, "limit": limit}))

    async def patient_labels(self, session: DbSession, user_id: int) -> list[tuple[str, str | None]]:
        """Every label with its current drug, in label order (a small user's list; the chat pages it)."""
        page = await self.patient_page(session, user_id, 1, None)
        return page.entries

    async def patient_page(
        self, session: DbSession, user_id: int, page: int, size: int | None
    ) -> Page[tuple[str, str | None]]:
        """One page of (label, drug or None) in label order, and how many pages there are now.

        A page past the last (a stale button: patients are only ever added) is the last page. LIMIT/OFFSET
        on the (user_id, label) key: the rows before the page are skipped in the index, not read.
        """
        return await pages.patients(session, user_id, page, size)

    async def summaries(
        self, session: DbSession, user_id: int, today: dt.date, labels: Iterable[str] | None = None
    ) -> dict[str, PatientSummary]:
        """The user's patients as the flow pre-fills them: all of them, or only `labels`.

        Bounded by date, not by the record's size: results and transfusions since the horizon (by the
        (patient_id, date) indexes), the last dose given and the doses at the current level since it
        began (by the doses' unique key (patient_id, drug, given_on, status)).
        """
        query = select(PatientRow).where(PatientRow.user_id == user_id)
        if labels is not None:
            wanted = list(labels)
            if not wanted:
                return {}
            query = query.where(PatientRow.label.in_(wanted))
        patients = list(await session.scalars(query))
        if not patients:
            return {}
        ids = [p.id for p in patients]
        regimens = {r.patient_id: r for r in await session.scalars(select(Regimen).where(Regimen.patient_id.in_(ids)))}
        # Back to the first dose at the current level at least: the stable rule reads every count since
        # then, and luspatercept's transfusion burden every transfusion since then (RULES.md 1, 2, 4).
        starts = [r.since for r in regimens.values() if r.since is not None]
        horizon = min([today - dt.timedelta(days=RECORD_HORIZON_DAYS), *starts])
        labs: dict[int, list[LabRecord]] = {}
        for lab in await session.execute(
            select(_LABS.c.patient_id, _LABS.c.test, _LABS.c.value, _LABS.c.unit, _LABS.c.date)
            .where(_LABS.c.patient_id.in_(ids), _LABS.c.date >= horizon)
            .order_by(_LABS.c.date, _LABS.c.id)
        ):
            labs.setdefault(lab[0], []).append(LabRecord(test=lab[1], value=lab[2], unit=lab[3], date=lab[4]))
        transfusions: dict[int, list[TransfusionRecord]] = {}
        for row in await session.execute(
            select(_TRANSFUSIONS.c.patient_id, _TRANSFUSIONS.c.date, _TRANSFUSIONS.c.units).where(
                _TRANSFUSIONS.c.patient_id.in_(ids), _TRANSFUSIONS.c.date >= horizon
            )
        ):
            transfusions.setdefault(row[0], []).append(TransfusionRecord(date=row[1], units=row[2]))
        last_given: dict[int, dt.date] = {}
        at_level: dict[int, int] = {}  # doses given at the regimen's level since it began
        for patient_id, current in regimens.items():
            # The last dose of the regimen's drug (any amount): one step back along the unique key.
            given = await session.scalar(
                _LAST_GIVEN, {"patient_id": patient_id, "drug": current.drug, "status": "given"}
            )
            if given is not None:
                last_given[patient_id] = given
            counted = await session.scalar(
                select(func.count())
                .select_from(_DOSES)
                .where(
                    _DOSES.c.patient_id == patient_id,
                    _DOSES.c.drug == current.drug,
                    _DOSES.c.status == "given",
                    _DOSES.c.amount == current.dose_amount,
                    *((_DOSES.c.given_on >= current.since,) if current.since is not None else ()),
                )
            )
            if counted:
                at_level[patient_id] = int(counted)
        result = {}
        for patient in patients:
            regimen = regimens.get(patient.id)
            result[patient.label] = PatientSummary(
                label=patient.label,
                weight_kg=patient.weight_kg,
                weight_date=patient.weight_date,
                age_years=patient.age_years,
                child_pugh=patient.child_pugh,
                drug=regimen.drug if regimen else None,
                indication=regimen.indication if regimen else None,
                region=regimen.region if regimen else None,
                dose_amount=regimen.dose_amount if regimen else None,
                dose_since=regimen.since if regimen else None,
                last_given=last_given.get(patient.id) if regimen else None,
                doses_at_level=at_level.get(patient.id),
                on_hold=regimen.on_hold if regimen else False,
                baseline_rbc_units_per_12_weeks=patient.baseline_rbc_units_per_12_weeks,
                labs=tuple(labs.get(patient.id, ())),
                transfusions=tuple(transfusions.get(patient.id, ())),
            )
        return result

    async def save_consultation(self, session: DbSession, user_id: int, effect: SaveConsultation) -> dict[str, Any]:
        """The patient's record after a consultation (bot/storage/records.py): what it changed, for Undo."""
        return await records.save_consultation(session, user_id, effect)

    async def audit(self, session: DbSession, user_id: int, effect: AuditRecommendation) -> None:
        """The recommendation appended to the audit's hash chain (bot.storage.audit_chain), in this
        transaction: the chain's head is locked until it commits."""
        await audit_chain.append(
            session,
            user_id,
            effect.patient_label,
            _now(),
            effect.response.ruleset,
            request_json(effect.request),
            response_json(effect.response),
        )

    async def history(
        self, session: DbSession, user_id: int, label: str
    ) -> tuple[str, list[tuple[dt.date, str]]] | None:
        """The label as recorded and the patient's whole history, newest first (the chat shows it in pages)."""
        found = await self.history_page(session, user_id, label, 1, None)
        return (found[0], found[1].entries) if found is not None else None

    async def history_page(
        self, session: DbSession, user_id: int, label: str, page: int, size: int | None
    ) -> tuple[str, Page[tuple[dt.date, str]]] | None:
        """The label as recorded and one page of the patient's doses, results and recommendations, newest first.

        None if the user has no such patient (another user's patients are never found). Each source is
        read newest first by its (patient, date) index, only as far as the page reaches, and merged: the
        first pages cost the same whatever the record's size (a page asked past the last is the last).
        """
        patient = await self._patient_by_label(session, user_id, label)
        if patient is None:
            return None
        patient_id, label = patient
        return label, await pages.history(session, user_id, patient_id, label, page, size)

    async def trend(self, session: DbSession, user_id: int, label: str) -> TrendRecord | None:
        """The rows of the patient's trend chart (bot.storage.trend), or None if the user has no such
        patient (another user's patients are never found)."""
        patient = await self._patient_by_label(session, user_id, label)
        if patient is None:
            return None
        patient_id, recorded = patient
        return await trend.read(session, user_id, patient_id, recorded)
