"""Each chat's updates one at a time across replicas, and each update handled once (webhook mode).

With a webhook, Telegram may post two updates of one chat to two replicas at once, and may post an
update again (no answer in time, a replica killed while it was in hand). Both are settled inside the
update's own transaction, before anything of it is read:

- PostgreSQL: a transaction-scoped advisory lock on the chat's key, so a second update of the same
  chat waits until the first has committed, then reads its state;
- SQLite: the first statement is a write, so the transaction holds the database's one write lock
  from its start (another process's transaction waits for it: SQLite's busy time-out);
- then the update's id is recorded (INSERT ... ON CONFLICT DO NOTHING): nothing inserted means it
  was handled already, and the caller drops it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from bot.storage.tables import ProcessedUpdate

KEEP_HANDLED = dt.timedelta(hours=24)  # Telegram stops redelivering an update long before this


class Session(Protocol):
    """What these functions need of a session: `AsyncSession`'s, or any session with its API."""

    async def execute(self, statement: Any, params: Any = None) -> Any: ...
    def get_bind(self) -> Engine | Connection: ...


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def claim_update(session: Session, chat_key: str, update_id: int) -> bool:
    """Serialise this chat's updates and record `update_id`; False when it was handled already."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(chat_key))))
    dialect = postgresql if postgres else sqlite
    statement = (
        dialect.insert(ProcessedUpdate)
        .values(update_id=update_id, handled_at=_utcnow())
        .on_conflict_do_nothing(index_elements=[ProcessedUpdate.update_id])
    )
    result = await session.execute(statement)
    return bool(result.rowcount)


async def prune_updates(session: Session, now: dt.datetime | None = None) -> int:
    """Forget the updates handled more than `KEEP_HANDLED` ago; how many were forgotten."""
    before = (now or _utcnow()) - KEEP_HANDLED
    result = await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.handled_at < before))
    return int(result.rowcount)
