"""The replicas' heartbeats: how many `hemadose run` processes share the bot right now.

Telegram's limit (about 30 messages a second) is the bot's, whatever number of processes send for
it; each replica therefore writes its heartbeat every `HEARTBEAT` and paces itself at its share of
the limit among the replicas seen within `LIVE_FOR` (bot/sending.py, `BotPace`). A replica killed
(no goodbye) stops counting `LIVE_FOR` after its last heartbeat; one that stops cleanly leaves at once.
The wall clock (UTC) is compared across replicas, as the reminder leases are.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from bot.storage.tables import ReplicaRow
from bot.storage.updates import Session

HEARTBEAT = dt.timedelta(seconds=2)
LIVE_FOR = 3 * HEARTBEAT  # two heartbeats may be late (a busy host) before a replica stops counting


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def beat(session: Session, name: str, now: dt.datetime | None = None) -> int:
    """Record that `name` is alive; the number of live replicas, itself included (at least 1)."""
    now = now or _utcnow()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(ReplicaRow).values(name=name, seen_at=now)
    await session.execute(
        statement.on_conflict_do_update(index_elements=[ReplicaRow.name], set_={"seen_at": statement.excluded.seen_at})
    )
    await session.execute(delete(ReplicaRow).where(ReplicaRow.seen_at < now - LIVE_FOR))  # the dead ones
    live = (await session.execute(select(func.count()).select_from(ReplicaRow))).scalar_one()
    return max(1, int(live))


async def leave(session: Session, name: str) -> None:
    """`name` stops: the others take its share at their next heartbeat."""
    await session.execute(delete(ReplicaRow).where(ReplicaRow.name == name))
