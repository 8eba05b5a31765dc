"""The service's side of /export LABEL: the formats offered, then the chosen documents built from the
user's own patient's record (bot/exports: fhir.resources and icalendar load on the first export).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from bot.limits import BAD_BUTTON
from bot.storage.repository import ChatRow
from bot.storage.session import DbSession
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
