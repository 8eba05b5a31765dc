"""The service's side of /trend LABEL and the Trend buttons: read the user's own patient, hand the flow
(flows/trend.py) the record, and draw the chart it describes after the update's transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot import charts
from bot.storage.repository import ChatRow
from bot.storage.session import DbSession
from flows import followup, trend
from flows.buttons import RecordButton, RecordKind, Word
from flows.replies import Button, Photo, Reply
from flows.routes import Routed
from flows.state import ChatState
from flows.trend import TrendChart

if TYPE_CHECKING:
    from bot.service import ChatService


@dataclass(frozen=True, slots=True, kw_only=True)
class ChartToDraw(Reply):
    """A trend chart to draw once the update's transaction has ended: drawing takes most of a second,
    which the database (one connection on SQLite) should not wait for."""

    chart: TrendChart


async def draw(reply: Reply) -> Reply:
    """A chart drawn into its photo (matplotlib, in a worker thread: the event loop goes on meanwhile);
    other replies as they are."""
    if not isinstance(reply, ChartToDraw):
        return reply
    png = await asyncio.to_thread(charts.render, reply.chart)
    name = f"trend-{reply.chart.label}-{reply.chart.end.isoformat()}.png"
    return Photo(reply.text, reply.buttons, png=png, filename=name)


async def on_trend(
    service: ChatService,
    session: DbSession,
    row: ChatRow,
    chat_ref: str,
    chat: ChatState,
    today: dt.date,
    routed: Routed,
) -> list[Reply]:
    """/trend LABEL and the Trend buttons: the chart of the user's own patient, or why there is none."""
    label = routed.argument.strip()
    if not label:
        return [Reply(trend.ask_label())]
    record = await service.storage.trend(session, row.user_id, label)
    if record is None:
        consulted = chat.answers.patient_label
        if consulted is not None and consulted.lower() == label.lower():  # the card's Trend, before Save
            return [Reply(trend.not_saved(consulted))]
        return [Reply(followup.unknown(label))]
    chart = trend.build(record)
    way_on = (
        Button("History", RecordButton(RecordKind.HISTORY, record.label).encode()),
        Button("New consultation", Word.NEW.value),
    )
    if chart is None:
        return [Reply(trend.nothing_to_draw(record), (way_on,))]
    return [ChartToDraw(trend.caption(chart), (way_on,), chart=chart)]
