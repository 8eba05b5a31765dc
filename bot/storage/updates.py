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
them (`replies_sent`): grouped, as the reminders' confirmations are, in the statement that keeps the
next update's replies, or on their own within a second (bot.service), well inside the lease. A
replica killed between its commit and its sends leaves them there. Telegram posts the update again
(it never got a 200): while the lease runs the owner may still be sending, so the post is refused
(`InFlightError`; the webhook answers 503 and Telegram retries later); once the lease expired, the
replica that got the post takes the row (one conditional UPDATE: lease expired, replies unsent) and
sends them with the may-repeat note, as the reminders re-send a message that may have gone out
(flows.reminders.MAY_REPEAT). A sweep (`take_left`, at start-up and every half lease) takes
expired rows the same way, for updates Telegram will not post again. The conditional UPDATE is the
claim, so a sweep and a second post never both send (on PostgreSQL the row lock makes the later one
re-read the row; on SQLite the write lock orders them). A replica killed after sending and before
the mark was written has its replies sent again, with the note: a repeat, never a loss.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, case, delete, func, null, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.storage.session import DbSession
from bot.storage.tables import ProcessedUpdate
from flows.reminders import FILE_NOT_RESENT, MAY_REPEAT
from flows.replies import Button, Reply

KEEP_HANDLED = dt.timedelta(hours=24)  # Telegram stops redelivering an update long before this
# How long the replica that handled an update may take to send its replies before another sends
# them again: a few messages at Telegram's one a second per chat, with room for a slow answer.
REPLY_LEASE = dt.timedelta(seconds=10)
SWEEP_BATCH = 100  # updates whose replies one sweep takes at most
# Seconds a sent update's mark waits to ride with the next update's replies (`SentMarks`); far below
# the reply lease, so no other replica sends the replies again meanwhile.
MARK_SENT_WITHIN = 1.0
# How long a replica keeps renewing the lease of replies it is sending (`RepliesInHand`): a safety net for
# a path that never said its send ended (each one does: `replies_sent`, `replies_not_sent`), not a time
# limit on sending. A bound that a slow send outlived let another replica send a second noted copy: in the
# kill test (200 users at the bot's 30 messages a second, a replica killed) replies waited behind the pace
# over 30 s (22 noted twice with a 30 s bound) and, with 20% of the calls failing, over 2 minutes (1).
KEEP_RENEWING = dt.timedelta(minutes=10)

log = logging.getLogger("hemadose.updates")

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
        {"text": _text_kept(reply), "buttons": [[[b.label, b.data] for b in row] for row in reply.buttons]}
        for reply in replies
    ]


def _text_kept(reply: Reply) -> str:
    """A chart (a `Reply` subclass: drawn after the transaction) or a document is kept by its caption."""
    with_file = type(reply) is not Reply or reply.document is not None
    return f"{reply.text}\n{FILE_NOT_RESENT}" if with_file else reply.text


def noted(kept: Sequence[dict[str, Any]]) -> list[Reply]:
    """Kept replies, to be sent again: each with the may-repeat note (it may have reached the user)."""
    return [
        Reply(
            reply["text"] if str(reply["text"]).startswith(MAY_REPEAT) else f"{MAY_REPEAT}\n{reply['text']}",
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
    sent: Sequence[int] = (),
) -> None:
    """In the update's transaction: its replies, held by `owner` for `lease`; and in the same
    statement, `sent`: updates of this owner whose replies were sent since (`replies_sent`), so that
    a replica handling updates one after another marks each sent with no statement of its own."""
    lease_until = (now or _utcnow()) + lease
    if not sent:
        await session.execute(
            update(_P)
            .where(_P.update_id == update_id)
            .values(replies=stored(replies), owner=owner, lease_until=lease_until)
        )
        return
    this = _P.update_id == update_id
    await session.execute(
        update(_P)
        .where(this | (_P.update_id.in_(sent) & (_P.owner == owner)))
        .values(
            replies=case((this, bindparam("replies", stored(replies), type_=_P.replies.type)), else_=null()),
            owner=owner,
            lease_until=case((this, lease_until), else_=null()),
        )
    )


async def replies_sent(session: Session, update_ids: Sequence[int], owner: str) -> None:
    """Telegram took these updates' replies: the updates are done (a later post is dropped). One statement."""
    await session.execute(
        update(_P).where(_P.update_id.in_(update_ids), _P.owner == owner).values(replies=null(), lease_until=None)
    )


class SentMarks:
    """The updates whose replies this replica sent and has not yet marked sent in the database.

    Grouped, as the reminders' confirmations are: the marks ride in the statement that keeps the next
    update's replies (`take`), or are written on their own MARK_SENT_WITHIN seconds after the first
    waiting (`flush`), and at a stop. Until then this replica drops a post of them itself, and other
    replicas leave them (the lease, far longer, runs). Killed meanwhile: sent again with the note."""

    def __init__(self, storage: Any, owner: str) -> None:
        self.storage = storage  # bot.storage.Storage (its `session()`)
        self.owner = owner
        self.waiting: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Future[None]] = set()

    def __contains__(self, update_id: int) -> bool:
        return update_id in self.waiting

    def add(self, update_id: int) -> None:
        self.waiting.add(update_id)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(MARK_SENT_WITHIN, self._flush_soon)

    def take(self) -> list[int]:
        """The marks waiting, for a statement of the caller's transaction (`restore` them if it fails)."""
        taken, self.waiting = sorted(self.waiting), set()
        return taken

    def restore(self, taken: Sequence[int]) -> None:
        self.waiting.update(taken)

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self._flush_logged())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception as error:  # kept waiting: the next update or flush writes them (the lease covers it)
            log.error("marking replies sent failed: %s", type(error).__name__)

    async def flush(self) -> None:
        """Write the marks waiting (one statement)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        taken = self.take()
        if not taken:
            return
        try:
            session: DbSession
            async with self.storage.session() as session, session.begin():
                await replies_sent(session, taken, self.owner)
        except BaseException:
            self.restore(taken)
            raise


class RepliesInHand:
    """The updates whose kept replies this replica is sending now, their lease renewed every few seconds
    (`renew`) while they wait behind the bot's pace or a 429's pause. Under load a reply waited longer
    than the lease: with 240 users at once, one replica's pace queue held 10 to 20 s of replies, and the
    other replica's sweep sent a noted copy of replies still on their way (the kill test: 241 noted
    copies, 71 replies noted twice). Killed, a replica stops renewing: its lease expires as before."""

    def __init__(self, storage: Any, owner: str, lease: dt.timedelta = REPLY_LEASE) -> None:
        self.storage = storage  # bot.storage.Storage (its `session()`)
        self.owner = owner
        self.lease = lease
        self.since: dict[int, float] = {}  # update id -> time.monotonic() when its sending began

    def __len__(self) -> int:
        return len(self.since)

    def add(self, update_id: int) -> None:
        self.since.setdefault(update_id, time.monotonic())

    def discard(self, update_id: int) -> None:
        self.since.pop(update_id, None)

    async def renew(self, now: dt.datetime | None = None) -> int:
        """One statement: the lease of every update in hand (still this replica's, replies unsent) moved
        on; rows another transaction is writing are skipped (PostgreSQL: no deadlock). How many."""
        stale = time.monotonic() - KEEP_RENEWING.total_seconds()
        for update_id in [u for u, began in self.since.items() if began < stale]:
            del self.since[update_id]
        if not self.since:
            return 0
        mine = (_P.update_id.in_(sorted(self.since))) & (_P.owner == self.owner) & _P.replies.is_not(None)
        locked = select(_P.update_id).where(mine).order_by(_P.update_id).with_for_update(skip_locked=True)
        session: DbSession
        async with self.storage.session() as session, session.begin():
            result: Any = await session.execute(  # a CursorResult: its rowcount
                update(_P).where(_P.update_id.in_(locked), mine).values(lease_until=(now or _utcnow()) + self.lease)
            )
        return int(result.rowcount)


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
