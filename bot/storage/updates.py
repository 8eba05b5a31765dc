"""Each chat's updates one at a time across replicas, each update handled once, and its replies
sent at least once (webhook mode).

With a webhook, Telegram may post two updates of one chat to two replicas at once, and may post an
update again (no answer in time, a replica killed while it was in hand). Both are settled inside the
update's own transaction, before anything of it is read:

- PostgreSQL: a transaction-scoped advisory lock on the chat's key, so a second update of the same
  chat waits until the first has committed, then reads its state;
- SQLite: the first statement is a write, so the transaction holds the database's one write lock
  from its start (another process's transaction waits for it: SQLite's busy time-out);
- then the update's id is recorded (INSERT ... ON CONFLICT DO NOTHING): nothing inserted means it
  was handled already, and the caller drops it, or sends what it left unsent (below).

Replies kept until sent. The update's replies are written into its row in the same transaction
(`keep_replies`), held by this replica (`owner`) until `lease_until`, and cleared once Telegram took
them (`replies_sent`). A replica killed between its commit and its sends leaves them there. Telegram
posts the update again (it never got a 200): while the lease runs the owner may still be sending,
so the post is refused (`InFlightError`; the webhook answers 503 and Telegram retries later); once the
lease expired, the replica that got the post takes the row (one conditional UPDATE: lease expired,
replies unsent) and sends them with the may-repeat note, as the reminders re-send a message that
may have gone out (flows.reminders.MAY_REPEAT). A sweep (`take_left`, at start-up and on the
reminders' tick) takes expired rows the same way, for updates Telegram will not post again. The
conditional UPDATE is the claim, so a sweep and a second post never both send (on PostgreSQL the
row lock makes the later one re-read the row; on SQLite the write lock orders them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, delete, func, null, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.storage.tables import ProcessedUpdate
from flows.reminders import MAY_REPEAT
from flows.replies import Button, Reply

KEEP_HANDLED = dt.timedelta(hours=24)  # Telegram stops redelivering an update long before this
# How long the replica that handled an update may take to send its replies before another sends
# them again: a few messages at Telegram's one a second per chat, with room for a slow answer.
REPLY_LEASE = dt.timedelta(seconds=10)
SWEEP_BATCH = 100  # updates whose replies one sweep takes at most

_P = ProcessedUpdate


class InFlightError(Exception):
    """The update was handled and its replies are being sent by the replica that handled it (its
    lease runs): nothing to do now; the webhook answers 503 so that Telegram posts it again later."""


class Session(Protocol):
    """What these functions need of a session: `AsyncSession`'s, or any session with its API."""

    async def execute(self, statement: Any, params: Any = None) -> Any: ...
    def get_bind(self) -> Engine | Connection: ...


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def stored(replies: Sequence[Reply]) -> list[dict[str, object]]:
    """Replies as the row keeps them: their text and buttons (what a re-send needs; no Telegram type)."""
    return [
        {"text": reply.text, "buttons": [[[b.label, b.data] for b in row] for row in reply.buttons]}
        for reply in replies
    ]


def noted(kept: Sequence[dict[str, Any]]) -> list[Reply]:
    """Kept replies, to be sent again: each with the may-repeat note (it may have reached the user)."""
    return [
        Reply(
            f"{MAY_REPEAT}\n{reply['text']}",
            tuple(tuple(Button(label, data) for label, data in row) for row in reply["buttons"]),
        )
        for reply in kept
    ]


async def claim_update(session: Session, chat_key: str, update_id: int) -> bool:
    """Serialise this chat's updates and record `update_id`; False when it was handled already."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(chat_key))))
    dialect = postgresql if postgres else sqlite
    statement = (
        dialect.insert(_P)
        .values(update_id=update_id, handled_at=_utcnow(), chat_key=chat_key)
        .on_conflict_do_nothing(index_elements=[_P.update_id])
    )
    result = await session.execute(statement)
    return bool(result.rowcount)


async def keep_replies(
    session: Session,
    update_id: int,
    replies: Sequence[Reply],
    owner: str,
    lease: dt.timedelta = REPLY_LEASE,
    now: dt.datetime | None = None,
) -> None:
    """In the update's transaction: its replies, held by `owner` for `lease` (one statement)."""
    lease_until = (now or _utcnow()) + lease
    await session.execute(
        update(_P)
        .where(_P.update_id == update_id)
        .values(replies=stored(replies), owner=owner, lease_until=lease_until)
    )


async def replies_sent(session: Session, update_id: int, owner: str) -> None:
    """Telegram took the replies: the update is done (a later post of it is dropped). One statement."""
    await session.execute(
        update(_P).where(_P.update_id == update_id, _P.owner == owner).values(replies=null(), lease_until=None)
    )


def _takeable(now: dt.datetime) -> Any:
    return _P.replies.is_not(None) & (_P.lease_until < now)


async def take_over(
    session: Session, update_id: int, owner: str, lease: dt.timedelta = REPLY_LEASE, now: dt.datetime | None = None
) -> list[Reply]:
    """An update handled already, posted again: its unsent replies, taken by `owner`, with the
    may-repeat note; [] when they were sent (the post is dropped). `InFlightError` while the replica
    that handled it may still be sending them (its lease runs)."""
    now = now or _utcnow()
    taken = (
        await session.execute(
            update(_P)
            .where(_P.update_id == update_id, _takeable(now))
            .values(owner=owner, lease_until=now + lease)
            .returning(_P.replies)
        )
    ).first()
    if taken is not None:
        return noted(taken[0])
    unsent = await session.execute(select(_P.update_id).where(_P.update_id == update_id, _P.replies.is_not(None)))
    if unsent.first() is not None:
        raise InFlightError(update_id)
    return []


async def take_left(
    session: Session,
    owner: str,
    lease: dt.timedelta = REPLY_LEASE,
    now: dt.datetime | None = None,
    limit: int = SWEEP_BATCH,
) -> list[tuple[int, str, list[Reply]]]:
    """The sweep: updates whose replies were left unsent by a replica whose lease expired, taken by
    `owner` (update id, chat key, replies with the may-repeat note), oldest first. A read first, so
    that nothing is written when nothing was left; on PostgreSQL rows another replica is taking are
    skipped (FOR UPDATE SKIP LOCKED), and the conditional UPDATE re-checks each row."""
    now = now or _utcnow()
    left = await session.execute(select(_P.update_id).where(_takeable(now)).limit(1))
    if left.first() is None:
        return []
    candidates = (
        select(_P.update_id)
        .where(_takeable(now))
        .order_by(_P.lease_until)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    taken = await session.execute(
        update(_P)
        .where(_P.update_id.in_(candidates), _takeable(now))
        .values(owner=owner, lease_until=now + lease)
        .returning(_P.update_id, _P.chat_key, _P.replies)
    )
    rows = sorted(taken.all(), key=lambda row: row[0])
    return [(update_id, chat_key, noted(replies)) for update_id, chat_key, replies in rows if chat_key]


async def prune_updates(session: Session, now: dt.datetime | None = None) -> int:
    """Forget the updates handled more than `KEEP_HANDLED` ago; how many were forgotten."""
    before = (now or _utcnow()) - KEEP_HANDLED
    result = await session.execute(delete(_P).where(_P.handled_at < before))
    return int(result.rowcount)
