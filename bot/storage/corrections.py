"""Records that can be corrected: a result, dose or transfusion edited or deleted, the weight changed,
a save undone, a patient deleted. Every change is audited (old and new value, who, when) in the same
transaction; a deleted patient leaves only a tombstone (bot.storage.audit_chain.erase).

Every query is scoped to the asking user: a row is found through its patient's `user_id`, never by its
id alone, so another user's row id in a button finds nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, delete, insert, select, update

from bot.storage import audit_chain
from bot.storage.audit_chain import Kind
from bot.storage.pages import Entry, Page, record
from bot.storage.records import _now
from bot.storage.session import DbSession
from bot.storage.tables import (
    Audit,
    ConversationRow,
    Delivery,
    Dose,
    LabRow,
    Occurrence,
    PatientRow,
    Regimen,
    Reminder,
    SaveRow,
    TransfusionRow,
)
from flows.state import ChatState

_PATIENTS, _REGIMENS, _DOSES, _LABS, _TRANSFUSIONS, _AUDIT = (
    cast(Table, model.__table__) for model in (PatientRow, Regimen, Dose, LabRow, TransfusionRow, Audit)
)
_REMINDERS, _OCCURRENCES, _DELIVERIES, _SAVES, _CONVERSATIONS = (
    cast(Table, model.__table__) for model in (Reminder, Occurrence, Delivery, SaveRow, ConversationRow)
)
# What each kind of entry is, and the columns a correction may change (the rest identify it).
TABLES = {"lab": _LABS, "dose": _DOSES, "transfusion": _TRANSFUSIONS}
FIELDS = {
    "lab": ("test", "value", "unit", "date"),
    "dose": ("drug", "amount", "unit", "given_on", "status"),
    "transfusion": ("units", "date"),
}
DAY_FIELD = {"lab": "date", "dose": "given_on", "transfusion": "date"}


class PatientView(NamedTuple):
    """What /patient LABEL shows: the label as recorded, the weight, the drug, and a page of the record."""

    label: str
    weight_kg: str | None
    weight_date: dt.date | None
    drug: str | None
    entries: Page[Entry]


class Found(NamedTuple):
    """One entry of a user's patient: its label, its values (FIELDS of its kind), the regimen's indication."""

    label: str
    patient_id: int
    values: dict[str, Any]
    indication: str | None = None


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Values as the audit's JSON holds them (dates as ISO text)."""
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in values.items()}


async def view(session: DbSession, user_id: int, patient_id: int, label: str, page: int, size: int) -> PatientView:
    """/patient LABEL: the weight, the drug and one page of the record (the /history page, with ids)."""
    facts = (
        await session.execute(
            select(_PATIENTS.c.weight_kg, _PATIENTS.c.weight_date, _REGIMENS.c.drug)
            .outerjoin(_REGIMENS, _REGIMENS.c.patient_id == _PATIENTS.c.id)
            .where(_PATIENTS.c.id == patient_id, _PATIENTS.c.user_id == user_id)
        )
    ).one()
    entries = await record(session, user_id, patient_id, label, page, size)
    return PatientView(label, facts[0], facts[1], facts[2], entries)


async def find(session: DbSession, user_id: int, kind: str, row_id: int) -> Found | None:
    """The entry `row_id` of `kind`, if it belongs to one of the user's patients; None otherwise."""
    table = TABLES.get(kind)
    if table is None:
        return None
    columns = [table.c[name] for name in FIELDS[kind]]
    row = (
        await session.execute(
            select(_PATIENTS.c.label, _PATIENTS.c.id, _REGIMENS.c.indication, *columns)
            .join(_PATIENTS, _PATIENTS.c.id == table.c.patient_id)
            .outerjoin(_REGIMENS, _REGIMENS.c.patient_id == _PATIENTS.c.id)
            .where(table.c.id == row_id, _PATIENTS.c.user_id == user_id)
        )
    ).first()
    if row is None:
        return None
    return Found(row[0], row[1], dict(zip(FIELDS[kind], row[3:], strict=True)), row[2])


async def _audit_correction(
    session: DbSession, user_id: int, label: str, what: str, row_id: int | None, old: Any, new: Any
) -> int:
    """The correction in the audit: what, which row, the old and the new value (None: deleted), who and when."""
    change = {"what": what, "id": row_id, "old": old, "new": new}
    return await audit_chain.append(session, user_id, label, _now(), "", change, {}, kind=Kind.CORRECTION)


async def duplicate(session: DbSession, kind: str, found: Found, new: dict[str, Any], row_id: int) -> bool:
    """Whether the corrected entry would be one already on record (the table's unique key)."""
    table = TABLES[kind]
    values = found.values | new
    same = [table.c[name] == values[name] for name in FIELDS[kind] if name in values]
    clash = await session.scalar(
        select(table.c.id).where(table.c.patient_id == found.patient_id, table.c.id != row_id, *same).limit(1)
    )
    return clash is not None


async def correct(session: DbSession, user_id: int, kind: str, row_id: int, found: Found, new: dict[str, Any]) -> None:
    """The entry's new values, and the audit entry with the old and new ones (in this transaction)."""
    await session.execute(update(TABLES[kind]).where(TABLES[kind].c.id == row_id).values(new))
    old, changed = _plain(found.values), _plain(found.values | new)
    await _audit_correction(session, user_id, found.label, kind, row_id, old, changed)


async def remove(session: DbSession, user_id: int, kind: str, row_id: int, found: Found) -> None:
    """The entry deleted, and the audit entry with its old values (the new one: none)."""
    await session.execute(delete(TABLES[kind]).where(TABLES[kind].c.id == row_id))
    await _audit_correction(session, user_id, found.label, kind, row_id, _plain(found.values), None)


async def change_weight(
    session: DbSession, user_id: int, patient_id: int, label: str, kg: str, day: dt.date | None
) -> None:
    """The patient's weight and its weighing date, with the old ones in the audit."""
    old = (
        await session.execute(
            select(_PATIENTS.c.weight_kg, _PATIENTS.c.weight_date).where(
                _PATIENTS.c.id == patient_id, _PATIENTS.c.user_id == user_id
            )
        )
    ).one()
    new = {"weight_kg": kg, "weight_date": day}
    await session.execute(update(_PATIENTS).where(_PATIENTS.c.id == patient_id).values(new))
    before = _plain({"weight_kg": old[0], "weight_date": old[1]})
    await _audit_correction(session, user_id, label, "weight", patient_id, before, _plain(new))


async def _drop_reminders(session: DbSession, reminder_ids: list[int]) -> int:
    """Reminders with their days and their messages to send (none left to go out)."""
    if not reminder_ids:
        return 0
    days = select(_OCCURRENCES.c.id).where(_OCCURRENCES.c.reminder_id.in_(reminder_ids))
    await session.execute(delete(_DELIVERIES).where(_DELIVERIES.c.occurrence_id.in_(days)))
    await session.execute(delete(_OCCURRENCES).where(_OCCURRENCES.c.reminder_id.in_(reminder_ids)))
    await session.execute(delete(_REMINDERS).where(_REMINDERS.c.id.in_(reminder_ids)))
    return len(reminder_ids)


async def remember_save(
    session: DbSession, user_id: int, chat_key: str, label: str, request: dict[str, Any], changes: dict[str, Any]
) -> None:
    """A save, with what it changed, so that Undo takes exactly that back; and the recommendation it saved
    (the newest of the label's audited recommendations with this request)."""
    recent = await session.execute(
        select(_AUDIT.c.seq, _AUDIT.c.request)
        .where(_AUDIT.c.user_id == user_id, _AUDIT.c.patient_label == label, _AUDIT.c.kind == Kind.RECOMMENDATION)
        .order_by(_AUDIT.c.seq.desc())
        .limit(5)
    )
    seq = next((number for number, asked in recent if asked == request), None)
    values = {"user_id": user_id, "patient_id": changes["patient_id"], "chat_key": chat_key, "at": _now()}
    await session.execute(insert(_SAVES).values(values | {"recommendation_seq": seq, "changes": changes}))


class Undone(NamedTuple):
    """What Undo took back, to say so."""

    label: str
    labs: int
    doses: int
    transfusions: int
    reminders: int
    patient_deleted: bool  # the save had created the patient, and nothing else is recorded for them


async def undo_last_save(session: DbSession, user_id: int, chat_key: str) -> Undone | None:
    """The chat's last save not yet undone, taken back: the rows it added, the facts and regimen as they were,
    the reminders set from it; the recommendation stays in the audit, with an undo entry referring to it."""
    saved = (
        await session.execute(
            select(_SAVES, _PATIENTS.c.label)
            .join(_PATIENTS, _PATIENTS.c.id == _SAVES.c.patient_id)
            .where(_SAVES.c.user_id == user_id, _SAVES.c.chat_key == chat_key, _SAVES.c.undone_at.is_(None))
            .order_by(_SAVES.c.id.desc())
            .limit(1)
        )
    ).first()
    if saved is None:
        return None
    changes: dict[str, Any] = saved.changes
    patient_id, label = saved.patient_id, saved.label
    counts = {}
    for kind in ("labs", "doses", "transfusions"):
        table = {"labs": _LABS, "doses": _DOSES, "transfusions": _TRANSFUSIONS}[kind]
        ids = [int(i) for i in changes.get(kind, [])]
        gone = await session.scalars(
            delete(table).where(table.c.id.in_(ids), table.c.patient_id == patient_id).returning(table.c.id)
        )
        counts[kind] = len(list(gone))
    reminders = list(
        await session.scalars(
            select(_REMINDERS.c.id).where(
                _REMINDERS.c.patient_id == patient_id, _REMINDERS.c.id > int(changes.get("reminders_after") or 0)
            )
        )
    )
    dropped = await _drop_reminders(session, reminders)
    await session.execute(delete(_REGIMENS).where(_REGIMENS.c.patient_id == patient_id))
    regimen = changes.get("regimen")
    if regimen:
        await session.execute(insert(_REGIMENS).values(_dated(_REGIMENS, regimen)))
    facts = changes.get("facts")
    if facts is not None:
        await session.execute(update(_PATIENTS).where(_PATIENTS.c.id == patient_id).values(_dated(_PATIENTS, facts)))
    now = _now()
    await session.execute(update(_SAVES).where(_SAVES.c.id == saved.id).values(undone_at=now))
    undone = {"save": saved.id, **counts, "reminders": dropped}
    await audit_chain.append(
        session, user_id, label, now, "", undone, {}, kind=Kind.UNDO, refers_to=saved.recommendation_seq
    )
    created_only = changes.get("created") and not await _anything_recorded(session, patient_id)
    if created_only:  # the save had created the patient: nothing of it is left, the label goes too
        await session.execute(delete(_SAVES).where(_SAVES.c.patient_id == patient_id))
        await session.execute(delete(_PATIENTS).where(_PATIENTS.c.id == patient_id))
    return Undone(label, counts["labs"], counts["doses"], counts["transfusions"], dropped, bool(created_only))


async def _anything_recorded(session: DbSession, patient_id: int) -> bool:
    for table in (_LABS, _DOSES, _TRANSFUSIONS, _REGIMENS, _REMINDERS):
        if await session.scalar(select(table.c.id).where(table.c.patient_id == patient_id).limit(1)) is not None:
            return True
    return False


def _dated(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """Values kept as JSON (dates as ISO text) back in their columns' types."""
    restored = dict(values)
    for name, value in values.items():
        if isinstance(value, str) and isinstance(table.c[name].type.python_type, type):
            kind = table.c[name].type.python_type
            if kind is dt.datetime:
                restored[name] = dt.datetime.fromisoformat(value)
            elif kind is dt.date:
                restored[name] = dt.date.fromisoformat(value)
    return restored


async def delete_patient(session: DbSession, user_id: int, patient_id: int, label: str) -> int:
    """The patient and everything recorded for them, from every table; the audit keeps a tombstone (who,
    when, the patient's former id, what was deleted: no clinical data) and its entries for the label lose
    their clinical part (audit_chain.erase). Chats whose state names the patient start afresh."""
    reminders = list(await session.scalars(select(_REMINDERS.c.id).where(_REMINDERS.c.patient_id == patient_id)))
    deleted: dict[str, int] = {"reminders": await _drop_reminders(session, reminders)}
    for name, table in (
        ("saves", _SAVES),
        ("regimens", _REGIMENS),
        ("doses", _DOSES),
        ("labs", _LABS),
        ("transfusions", _TRANSFUSIONS),
    ):
        deleted[name] = len(
            list(await session.scalars(delete(table).where(table.c.patient_id == patient_id).returning(table.c.id)))
        )
    for chat_key, state in (
        await session.execute(
            select(_CONVERSATIONS.c.chat_key, _CONVERSATIONS.c.state).where(_CONVERSATIONS.c.user_id == user_id)
        )
    ).all():
        if mentions(ChatState.model_validate_json(state), label):
            await session.execute(
                update(_CONVERSATIONS)
                .where(_CONVERSATIONS.c.chat_key == chat_key, _CONVERSATIONS.c.user_id == user_id)
                .values(state=ChatState().model_dump_json(exclude_defaults=True), updated_at=_now())
            )
    await session.execute(delete(_PATIENTS).where(_PATIENTS.c.id == patient_id, _PATIENTS.c.user_id == user_id))
    return await audit_chain.erase(session, user_id, label, _now(), {"patient_id": patient_id, "deleted": deleted})


def mentions(chat: ChatState, label: str) -> bool:
    """Whether a chat's state holds anything of the patient (a consultation, a record shown, an edit)."""
    edit = chat.record_edit
    return label in (chat.answers.patient_label, chat.offered_record, edit.label if edit is not None else None)
