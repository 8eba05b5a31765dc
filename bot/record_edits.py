"""The service's side of /patient LABEL and Undo: read the record, hand the flow (flows/records.py) what
it shows and asks, and write the correction it returns (bot/storage/corrections.py), audited.

Every read goes through the asking user's patients: a row id from another user's button finds nothing.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bot.storage import corrections
from bot.storage.repository import ChatRow
from bot.storage.session import DbSession
from flows import records
from flows.buttons import EditAction, record_edit_button
from flows.replies import Env, Reply
from flows.routes import Routed
from flows.state import ChatState, RecordEdit

if TYPE_CHECKING:
    from bot.service import ChatService


def answers_edit(routed: Routed) -> bool:
    """Whether what the user did answers the correction under way: typed text or an answer button, or Cancel
    / Back (which end it). Any other command or button leaves the correction."""
    if routed.route is None:
        return routed.command is None
    return routed.route.name in ("cancel", "back")


async def _save(service: ChatService, session: DbSession, row: ChatRow, chat_ref: str, chat: ChatState) -> None:
    await service.storage.save_chat(session, row, chat_ref, chat.model_dump_json(exclude_defaults=True))


async def _record(service: ChatService, session: DbSession, user_id: int, label: str, page: int = 1) -> Reply:
    found = await service.storage.patient(session, user_id, label)
    if found is None:
        return records.unknown(label)
    patient_id, recorded = found
    view = await corrections.view(session, user_id, patient_id, recorded, page, records.RECORD_PAGE)
    shown = view.entries
    return records.record(
        recorded, (view.weight_kg, view.weight_date), view.drug, shown.entries, (shown.page, shown.pages, shown.total)
    )


async def on_patient(
    service: ChatService,
    session: DbSession,
    row: ChatRow,
    chat_ref: str,
    chat: ChatState,
    today: dt.date,
    routed: Routed,
) -> list[Reply]:
    """/patient LABEL and its buttons (pr:...)."""
    if routed.data is None:
        return [
            await _record(service, session, row.user_id, routed.argument) if routed.argument else records.ask_label()
        ]
    pressed = record_edit_button(routed.data)
    if pressed is None:
        return [records.gone()]
    if pressed.action is EditAction.PAGE:
        return [await _record(service, session, row.user_id, pressed.label, pressed.page)]
    if pressed.action in (EditAction.WEIGHT, EditAction.FORGET):
        patient = await service.storage.patient(session, row.user_id, pressed.label)
        if patient is None:
            return [records.gone()]
        patient_id, label = patient
        old: dict[str, Any] = {}
        if pressed.action is EditAction.WEIGHT:
            view = await corrections.view(session, row.user_id, patient_id, label, 1, 1)
            old = {"weight_kg": view.weight_kg, "weight_date": view.weight_date}
        what = "weight" if pressed.action is EditAction.WEIGHT else "patient"
        chat.record_edit, reply = records.start(label, what, patient_id, old)
        await _save(service, session, row, chat_ref, chat)
        return [reply]
    found = await corrections.find(session, row.user_id, pressed.kind, pressed.row_id)
    if found is None:
        return [records.gone()]
    if pressed.action is EditAction.SHOW:
        return [records.entry(found.label, pressed.kind, pressed.row_id, found.values)]
    if pressed.action is EditAction.DELETE:
        await corrections.remove(session, row.user_id, pressed.kind, pressed.row_id, found)
        return [records.deleted(found.label, pressed.kind, found.values)]
    chat.record_edit, reply = records.start(found.label, pressed.kind, pressed.row_id, found.values, found.indication)
    await _save(service, session, row, chat_ref, chat)
    return [reply]


async def on_answer(
    service: ChatService, session: DbSession, row: ChatRow, chat_ref: str, chat: ChatState, today: dt.date, typed: str
) -> list[Reply]:
    """An answer to the correction under way (typed, or an answer button's value); written once it is whole."""
    edit = chat.record_edit
    assert edit is not None
    step = records.answer(edit, typed, Env(today))
    chat.record_edit = step.edit
    replies = step.replies
    if step.commit is not None:
        reply, afresh = await _commit(service, session, row.user_id, edit, step.commit)
        replies = [reply]
        chat = ChatState() if afresh else chat  # this chat named the deleted patient: it starts afresh
    await _save(service, session, row, chat_ref, chat)
    return replies


_NUMBERS = ("value", "amount", "units")  # kept as their decimal text, as a save keeps them (records._text)


async def _commit(
    service: ChatService, session: DbSession, user_id: int, edit: RecordEdit, new: dict[str, Any]
) -> tuple[Reply, bool]:
    """The correction written (audited); the reply, and whether the chat must start afresh."""
    if edit.what in ("weight", "patient"):
        patient = await service.storage.patient(session, user_id, edit.label)
        if patient is None or patient[0] != edit.row_id:
            return records.gone(), False
        if edit.what == "patient":
            await corrections.delete_patient(session, user_id, patient[0], patient[1])
            return records.patient_deleted(edit.label), True
        kg = _text(new["weight_kg"])
        await corrections.change_weight(session, user_id, patient[0], edit.label, kg, new["weight_date"])
        return records.corrected(edit, new), False
    assert edit.row_id is not None
    found = await corrections.find(session, user_id, edit.what, edit.row_id)
    if found is None:
        return records.gone(), False
    stored = {name: _text(value) if name in _NUMBERS else value for name, value in new.items()}
    if await corrections.duplicate(session, edit.what, found, stored, edit.row_id):
        return records.duplicate(edit), False
    await corrections.correct(session, user_id, edit.what, edit.row_id, found, stored)
    return records.corrected(edit, stored), False


def _text(value: Any) -> str:
    return format(Decimal(str(value)).normalize(), "f")


async def on_undo(
    service: ChatService,
    session: DbSession,
    row: ChatRow,
    chat_ref: str,
    chat: ChatState,
    today: dt.date,
    routed: Routed,
) -> list[Reply]:
    """Undo, right after Save to patient: this chat's last save taken back, and said what."""
    undone = await corrections.undo_last_save(session, row.user_id, chat_ref)
    if undone is None:
        return [records.NOTHING_TO_UNDO]
    if chat.answers.patient_label == undone.label:
        chat.saved, chat.reminders_set = False, False  # Save to patient may be pressed again
        await _save(service, session, row, chat_ref, chat)
    counts = {"labs": undone.labs, "doses": undone.doses, "transfusions": undone.transfusions}
    return [records.undone(undone.label, counts | {"reminders": undone.reminders}, undone.patient_deleted)]
