"""The service's side of /export LABEL: the formats offered, then the chosen documents built from the
user's own patient's record (bot/exports: fhir.resources and icalendar load on the first export).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.limits import BAD_BUTTON, fit
from bot.storage.repository import ChatRow
from bot.storage.session import DbSession
from bot.storage.updates import claim_update
from flows import exporting
from flows.replies import Reply
from flows.routes import Routed
from flows.state import ChatState

if TYPE_CHECKING:
    from bot.service import ChatService


async def on_export(
    service: ChatService,
    session: DbSession,
    row: ChatRow,
    chat_ref: str,
    chat: ChatState,
    today: dt.date,
    routed: Routed,
) -> list[Reply]:
    """/export LABEL offers the formats; a format's button sends its documents (bot/exports)."""
    from bot.exports import documents, record  # fhir.resources and icalendar: loaded on the first export

    pressed = exporting.read_button(routed.argument) if routed.data is not None else None
    if routed.data is not None and pressed is None:
        return [Reply(BAD_BUTTON)]
    label = pressed.label if pressed is not None else routed.argument
    if not label:
        return [Reply(exporting.NO_LABEL)]
    exact = await service.storage.find_label(session, row.user_id, label)
    found = await record.read(session, row.user_id, exact) if exact is not None else None
    if found is None:
        return [Reply(exporting.unknown(label))]
    if pressed is None:
        return [exporting.menu(found.label)]
    return documents.documents(found, pressed.format, service.clock(), today, service.default_time_zone)


async def import_document(
    service: ChatService, user_ref: str, chat_ref: str, name: str, content: bytes, *, update_id: int | None = None
) -> list[Reply]:
    """A file sent to the bot: a CSV or FHIR Bundle imported into this user's records, in one
    transaction (every problem reported and nothing imported, or all of it). `update_id`: as for
    `handle` (webhook mode: an upload posted twice is imported once). Private chats only (the service)."""

    from bot.exports.importing import import_file

    async with service.storage.session() as session, session.begin():
        if update_id is not None and not await claim_update(session, chat_ref, update_id):
            return []  # handled already (by this replica or another)
        row = await service.storage.open_chat(session, user_ref, chat_ref)
        today = service.clock().astimezone(ZoneInfo(row.time_zone or service.default_time_zone)).date()
        outcome = await import_file(session, row.user_id, content, today)
        if outcome.problems:
            return fit([Reply(exporting.refused(name, outcome.problems))])
        return fit([Reply(exporting.report(name, outcome.imported, outcome.recommendations))])
