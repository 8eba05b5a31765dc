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
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, bindparam, delete, event, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.storage import audit_chain
from bot.storage.files import create_private
from bot.storage.inloop import InLoopEngine
from bot.storage.schema import MIGRATIONS as MIGRATIONS  # where the tests find the migrations
from bot.storage.schema import upgrade_to_head
from bot.storage.session import DbEngine, DbSession
from bot.storage.tables import Audit, ConversationRow, Dose, LabRow, PatientRow, Regimen, TransfusionRow, User
from core.models import DoseRequest, DoseResponse
from flows.replies import (
    AuditRecommendation,
    LabRecord,
    PatientSummary,
    SaveConsultation,
    TransfusionRecord,
    request_json,
    response_json,
)

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


def _or_ignore(session: DbSession, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL (both spell it the same)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def _upsert_chat(session: DbSession) -> Any:
    """The chat's first save, or its state replaced if another process saved it first (its own row only)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_CONVERSATIONS)
    return statement.on_conflict_do_update(
        index_elements=[_CONVERSATIONS.c.chat_key],
        set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
        where=_CONVERSATIONS.c.user_id == statement.excluded.user_id,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


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
    engine: DbEngine
    if url.startswith("sqlite:"):
        # Every session here ends its transaction itself (commit or rollback), so returning the
        # connection to the pool needs no extra ROLLBACK.
        engine = InLoopEngine(path or ":memory:", pool_reset_on_return=None, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        with engine.sync_engine.begin() as connection:  # nothing else can run yet: no turn to wait for
            _migrate(connection)
        await engine.committed()
        return Storage(engine)
    from sqlalchemy.ext.asyncio import create_async_engine  # the asyncio bridge: only off SQLite

    if sqlite:
        engine = create_async_engine(url, pool_reset_on_return=None, hide_parameters=True)
        # aiosqlite: no per-commit flush there, so FULL throughout
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas_full)
    else:
        engine = create_async_engine(url, hide_parameters=True)
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
        self.session: Callable[[], DbSession]
        if isinstance(engine, InLoopEngine):
            self.session = engine.session  # SQLite: statements run in the loop, no greenlet
        else:
            from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

            self.session = async_sessionmaker(cast(AsyncEngine, engine), expire_on_commit=False)

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

    async def _patient(self, session: DbSession, user_id: int, label: str) -> PatientRow | None:
        return await session.scalar(select(PatientRow).where(PatientRow.user_id == user_id, PatientRow.label == label))

    async def _patient_by_label(self, session: DbSession, user_id: int, label: str) -> PatientRow | None:
        """As typed: the exact label, else the one label that matches ignoring case (as the chat does)."""
        exact = await self._patient(session, user_id, label)
        if exact is not None:
            return exact
        found = list(
            await session.scalars(
                select(PatientRow).where(PatientRow.user_id == user_id, func.lower(PatientRow.label) == label.lower())
            )
        )
        return found[0] if len(found) == 1 else None

    async def patient_labels(self, session: DbSession, user_id: int) -> list[tuple[str, str | None]]:
        rows = await session.execute(
            select(PatientRow.label, Regimen.drug)
            .outerjoin(Regimen, Regimen.patient_id == PatientRow.id)
            .where(PatientRow.user_id == user_id)
            .order_by(PatientRow.label)
        )
        return [(label, drug) for label, drug in rows]

    async def summaries(
        self, session: DbSession, user_id: int, today: dt.date, labels: Iterable[str] | None = None
    ) -> dict[str, PatientSummary]:
        """The user's patients as the flow pre-fills them: all of them, or only `labels`."""
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
        for lab in await session.scalars(
            select(LabRow).where(LabRow.patient_id.in_(ids), LabRow.date >= horizon).order_by(LabRow.date, LabRow.id)
        ):
            labs.setdefault(lab.patient_id, []).append(
                LabRecord(test=lab.test, value=lab.value, unit=lab.unit, date=lab.date)
            )
        transfusions: dict[int, list[TransfusionRecord]] = {}
        for row in await session.scalars(
            select(TransfusionRow).where(TransfusionRow.patient_id.in_(ids), TransfusionRow.date >= horizon)
        ):
            transfusions.setdefault(row.patient_id, []).append(TransfusionRecord(date=row.date, units=row.units))
        last_given: dict[tuple[int, str], dt.date] = {}
        at_level: dict[int, int] = {}  # doses given at the regimen's level since it began
        for dose in await session.scalars(
            select(Dose).where(Dose.patient_id.in_(ids), Dose.status == "given").order_by(Dose.given_on)
        ):
            last_given[(dose.patient_id, dose.drug)] = dose.given_on
            regimen = regimens.get(dose.patient_id)
            if (
                regimen is not None
                and regimen.drug == dose.drug
                and regimen.dose_amount == dose.amount
                and (regimen.since is None or dose.given_on >= regimen.since)
            ):
                at_level[dose.patient_id] = at_level.get(dose.patient_id, 0) + 1
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
                last_given=last_given.get((patient.id, regimen.drug)) if regimen else None,
                doses_at_level=at_level.get(patient.id),
                on_hold=regimen.on_hold if regimen else False,
                baseline_rbc_units_per_12_weeks=patient.baseline_rbc_units_per_12_weeks,
                labs=tuple(labs.get(patient.id, ())),
                transfusions=tuple(transfusions.get(patient.id, ())),
            )
        return result

    async def save_consultation(self, session: DbSession, user_id: int, effect: SaveConsultation) -> None:
        """The patient's record after a consultation: weight, regimen, the last dose, results, transfusions.

        Core statements, not ORM objects: a save is the heaviest update, and the unit of work cost
        more than the statements (about half of the update's time).
        """
        request, response = effect.request, effect.response
        facts = request.patient
        known_facts: dict[str, Any] = {}
        if facts.weight_kg is not None:
            known_facts["weight_kg"] = _text(facts.weight_kg)
            known_facts["weight_date"] = facts.weight_date
        if facts.age_years is not None:
            known_facts["age_years"] = _text(facts.age_years)
        if facts.child_pugh is not None:
            known_facts["child_pugh"] = facts.child_pugh
        if request.baseline_rbc_units_per_12_weeks is not None:
            known_facts["baseline_rbc_units_per_12_weeks"] = _text(request.baseline_rbc_units_per_12_weeks)
        patient_id = await session.scalar(
            select(_PATIENTS.c.id).where(_PATIENTS.c.user_id == user_id, _PATIENTS.c.label == effect.patient_label)
        )
        if patient_id is None:
            values = {"user_id": user_id, "label": effect.patient_label, "created_at": _now(), **known_facts}
            patient_id = await session.scalar(insert(_PATIENTS).values(values).returning(_PATIENTS.c.id))
        elif known_facts:
            await session.execute(update(_PATIENTS).where(_PATIENTS.c.id == patient_id).values(known_facts))
        await self._save_regimen(session, patient_id, request, response)
        current = request.current_dose
        if current is not None:
            given_on = current.last_given
            recorded = await session.scalar(
                select(_DOSES.c.id).where(
                    _DOSES.c.patient_id == patient_id,
                    _DOSES.c.drug == request.drug,
                    _DOSES.c.status == "given",
                    _DOSES.c.given_on == given_on,
                )
            )
            if recorded is None:
                dose = {"patient_id": patient_id, "drug": request.drug, "amount": _text(current.amount)}
                dose |= {"unit": current.unit, "given_on": given_on, "status": "given", "recorded_at": _now()}
                await session.execute(insert(_DOSES).values(dose))
        # Results and transfusions already on record are not added twice (one read per table).
        if request.labs:
            lab_rows = await session.execute(
                select(_LABS.c.test, _LABS.c.date, _LABS.c.value, _LABS.c.unit).where(_LABS.c.patient_id == patient_id)
            )
            known_labs = {tuple(row) for row in lab_rows}
            new_labs = []
            for lab in request.labs:
                key = (lab.test, lab.date, _text(lab.value), lab.unit)
                if key not in known_labs:
                    known_labs.add(key)
                    new_labs.append(dict(zip(("test", "date", "value", "unit"), key, strict=True)))
            if new_labs:
                common = {"patient_id": patient_id, "recorded_at": _now()}
                await session.execute(insert(_LABS), [lab | common for lab in new_labs])
        if request.transfusions:
            rows = await session.execute(
                select(_TRANSFUSIONS.c.date, _TRANSFUSIONS.c.units).where(_TRANSFUSIONS.c.patient_id == patient_id)
            )
            known = {(row[0], row[1]) for row in rows}
            new_transfusions = []
            for transfusion in request.transfusions:
                key2 = (transfusion.date, _text(transfusion.units))
                if key2 not in known:
                    known.add(key2)
                    new_transfusions.append({"patient_id": patient_id, "date": key2[0], "units": key2[1]})
            if new_transfusions:
                await session.execute(insert(_TRANSFUSIONS), new_transfusions)

    async def _save_regimen(
        self, session: DbSession, patient_id: int, request: DoseRequest, response: DoseResponse
    ) -> None:
        """The treatment from now on: the recommended dose from its date, a hold, or none after a stop."""
        action = response.action
        await session.execute(delete(_REGIMENS).where(_REGIMENS.c.patient_id == patient_id))
        if action in ("discontinue", "complete"):
            return
        current = request.current_dose
        amount: Decimal | int | float | None = current.amount if current else None
        since, on_hold = (current.since if current else None), request.on_hold
        if action in ("start", "increase", "decrease", "resume"):
            assert response.dose is not None, "a dose-giving action carries its dose"
            amount, since, on_hold = response.dose.amount, response.next_dose_date, False
        elif action == "continue":
            on_hold = False
        elif action == "hold":
            on_hold = True
        elif amount is None:  # a refer before any start: nothing to record as treatment
            return
        unit = response.dose.unit if response.dose else current.unit if current else ""
        regimen: dict[str, Any] = {"patient_id": patient_id, "drug": request.drug, "indication": request.indication}
        regimen |= {"region": response.ruleset.split("/")[1], "dose_amount": _text(amount), "dose_unit": unit}
        regimen |= {"since": since, "on_hold": on_hold, "updated_at": _now()}
        await session.execute(insert(_REGIMENS).values(regimen))

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
        """The label as recorded and the patient's doses, results and recommendations, newest first.

        None if the user has no such patient (another user's patients are never found).
        """
        patient = await self._patient_by_label(session, user_id, label)
        if patient is None:
            return None
        label = patient.label
        # (date, kind, id): recommendations above the results and doses of their date, newest first.
        events: list[tuple[dt.date, int, int, str]] = []
        for dose in await session.scalars(select(Dose).where(Dose.patient_id == patient.id)):
            events.append((dose.given_on, 0, dose.id, f"dose {dose.status}: {dose.drug} {dose.amount} {dose.unit}"))
        for lab in await session.scalars(select(LabRow).where(LabRow.patient_id == patient.id)):
            events.append((lab.date, 1, lab.id, f"{lab.test} {lab.value} {lab.unit}"))
        for row in await session.scalars(select(TransfusionRow).where(TransfusionRow.patient_id == patient.id)):
            events.append((row.date, 1, row.id, f"transfusion {row.units} units"))
        for entry in await session.scalars(
            select(Audit).where(Audit.user_id == user_id, Audit.patient_label == label).order_by(Audit.id)
        ):
            response: dict[str, Any] = entry.response
            given = response.get("dose")
            shown = f" {given['amount']} {given['unit']}" if isinstance(given, dict) else ""
            rule = response["rationale"][0]["rule"]
            decided = dt.date.fromisoformat(str(entry.request["as_of"]))  # the consultation's date, not the server's
            events.append((decided, 2, entry.id, f"recommendation: {response['action']}{shown} ({rule})"))
        events.sort(reverse=True)
        return label, [(day, text) for day, _, _, text in events]


def _text(value: Any) -> str:
    """Numbers are kept as their decimal text: exact, and the same on SQLite and PostgreSQL.

    A request's Decimal is read as the request's JSON number first (`request_json`), so the text is
    the one stored before the effects carried models (an int where whole, else a float)."""
    if isinstance(value, Decimal):
        integral = value.to_integral_value()
        value = int(integral) if value == integral else float(value)
    return format(Decimal(str(value)).normalize(), "f")
