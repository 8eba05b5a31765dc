"""The outbox: claiming what is due (the occurrence moves on and its message is written in one
transaction), sending the messages concurrently, confirming them 'sent' only once the transport
accepted them, retrying or giving up a failed send, and pausing the reminders of a chat that
blocked the bot.

Concurrency (issue 12). Each chat has a queue of its own, sent in order by one worker; at most
`concurrency` sends are in flight at once (a semaphore). A chat waiting for its own rate limit
(`TelegramSender.pace`, one message a second) waits before taking a send slot, so it holds up no
other chat; the overall 30/s limit stays in the sender. Claiming goes on while slow chats drain.

Claims across replicas (issue 13). A delivery belongs to one outbox at a time: `owner` (this
outbox's id, `replica_id`) and `lease_until`, renewed while the rows are in hand. New messages are
written already claimed ('queued', owned) in the transaction that moves their occurrences on, and
those occurrences are claimed first by a conditional UPDATE, so two replicas never move the same
one on. What another replica left (a crash, a stop) is taken by one conditional UPDATE once its
lease has expired: portable to SQLite and PostgreSQL (there in key order, `_in_key_order`: no deadlock).

Writes are grouped, not one per message: the messages whose chats hold a send slot are marked
'sending' together (at most `concurrency`) just before the first of them is handed over; confirmations
ride along with those marks, or are written CHUNK at a time, or CONFIRM_WITHIN seconds after the first
one waiting, and at the end of the run. After a crash, the rows still 'sending' (those in a slot, and
per chat at most the one before, accepted and unconfirmed) are re-sent, once their lease expired, with
the may-repeat note; rows still 'queued' were never handed over and go without it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select, true, update

from bot.reminders.base import (
    _DELIVERIES,
    _OCCURRENCES,
    _REMINDERS,
    ACTIVE_STATES,
    ANSWERED_STATES,
    GIVE_UP_AFTER,
    RETRY_AFTER,
    Buttons,
    Clock,
    DeliveryError,
    DeliveryState,
    OccurrenceState,
    Purpose,
    _naive,
)
from bot.reminders.delivery_run import CHUNK as CHUNK
from bot.reminders.delivery_run import CONFIRM_WITHIN as CONFIRM_WITHIN
from bot.reminders.delivery_run import Item, Run
from bot.reminders.due import Due
from bot.storage.session import DbSession
from bot.storage.tables import Delivery, Occurrence, PatientRow, Reminder, User
from flows import reminders as words
from flows.replies import Button, Reply

log = logging.getLogger("hemadose.reminders")

CONCURRENCY = 16  # sends in flight at once: 30/s at a 150 ms round trip needs 4.5; room for slower ones
LEASE = dt.timedelta(seconds=30)  # how long claimed rows stay this replica's; renewed every third of it
_IN_HAND = (DeliveryState.QUEUED, DeliveryState.SENDING)
_D = _DELIVERIES.c


def _in_key_order(condition: Any, *, skip_locked: bool = False) -> Any:
    """The keys matching `condition`, for `_D.key.in_()`: on PostgreSQL locked in key order (no deadlock
    between replicas' multi-row updates), skipping rows another replica is writing if `skip_locked`."""
    return select(_D.key).where(condition).order_by(_D.key).with_for_update(skip_locked=skip_locked).correlate(None)


_SET_STATE = update(_DELIVERIES).where(_D.key == bindparam("the_key")).values(state=bindparam("state"))
_SENT = (
    update(_DELIVERIES)
    .where(_D.key == bindparam("the_key"))
    .values(
        state=DeliveryState.SENT,
        sent_at=bindparam("sent_at"),
        message_id=bindparam("message_id"),
        attempts=bindparam("attempts"),
        lease_until=None,
    )
)


def replica_id() -> str:
    """This outbox's name on the rows it claims: host, process and a random part (unique per outbox)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _stored(reply: Reply) -> Buttons:
    return [[[button.label, button.data] for button in row] for row in reply.buttons]


class Outbox(Due):
    """The due-occurrence loop and the delivery of each message once, across replicas."""

    def __init__(
        self,
        *args: Any,
        concurrency: int = CONCURRENCY,
        lease: dt.timedelta = LEASE,
        lease_clock: Clock | None = None,
        **options: Any,
    ) -> None:
        super().__init__(*args, **options)
        self.concurrency = concurrency
        self.lease = lease
        # Leases are compared across replicas: by default the scheduler's clock (the wall clock in
        # a running bot); a process whose scheduler clock stands still (a test) gives the wall clock.
        self.lease_clock = lease_clock
        self.owner = replica_id()
        self.most_in_flight = 0  # the most sends in flight at once so far (tests and the benchmark read it)

    def lease_now(self) -> dt.datetime:
        return _naive(self.lease_clock()) if self.lease_clock is not None else self.now()

    def _ours(self, chat_key: Any) -> Any:
        """The chats this process delivers to: a transport prefix ('tg:') or one chat exactly."""
        if not self.chats:
            return true()
        if self.chats.endswith(":"):
            return chat_key.startswith(self.chats, autoescape=True)
        return chat_key == self.chats

    async def next_wakeup(self) -> dt.datetime | None:
        """The earliest instant (UTC, naive) at which something of this process's chats will be due."""
        async with self.storage.session() as session:
            occurrence = await session.scalar(
                select(func.min(Occurrence.next_at))
                .join(Reminder, Reminder.id == Occurrence.reminder_id)
                .where(self._ours(Reminder.chat_key))
            )
            retry = await session.scalar(
                select(func.min(Delivery.next_try_at)).where(
                    Delivery.state == DeliveryState.RETRY, self._ours(Delivery.chat_key)
                )
            )
        moments = [moment for moment in (occurrence, retry) if moment is not None]
        return min(moments) if moments else None

    async def run_due(self) -> int:
        """Act on everything due now: first what was left in flight (by this outbox's broken-off run,
        or by a replica whose lease expired) and retries, then new sends. Returns the number of
        messages delivered."""
        async with self._lock:
            if self.sender is None:  # nothing to send with: what is due is still decided (and queued)
                while await self._claim_due():
                    pass
                return 0
            return await Run(self).run()

    async def _claim_due(self, most: int | None = None) -> list[str]:
        """One transaction: the due occurrences (`batch`, or `most` if fewer) are claimed and move on, and
        their messages are written 'queued', owned by this outbox. Returns their keys."""
        now = self.now()
        due = (
            select(Occurrence.id)
            .join(Reminder, Reminder.id == Occurrence.reminder_id)
            .where(Occurrence.next_at <= now, self._ours(Reminder.chat_key))
            .order_by(Occurrence.next_at)
            .limit(max(1, min(self.batch, most or self.batch)))
        )
        while True:  # until something is claimed that has a message, or nothing is due
            async with self.storage.session() as session:
                ids = list(await session.scalars(due))
            if not ids:
                return []
            keys = await self._claim(ids, now)
            if keys:
                return keys

    async def _claim(self, ids: Sequence[int], now: dt.datetime) -> list[str]:
        """Those of `ids` still due, claimed, moved on and their messages written (one transaction)."""
        async with self.storage.session() as session, session.begin():
            # The claim: a write first, so that on SQLite this transaction holds the write lock before
            # it reads, and on PostgreSQL each row is locked and its condition re-checked after a
            # concurrent claim commits. An occurrence another replica moved on meanwhile is not ours.
            claimed = list(
                await session.scalars(
                    update(_OCCURRENCES)
                    .where(_OCCURRENCES.c.id.in_(ids), _OCCURRENCES.c.next_at <= now)
                    .values(next_at=_OCCURRENCES.c.next_at)
                    .returning(_OCCURRENCES.c.id)
                )
            )
            if not claimed:
                return []
            rows = (
                await session.execute(
                    select(Occurrence, Reminder, User.time_zone, PatientRow.label)
                    .join(Reminder, Reminder.id == Occurrence.reminder_id)
                    .join(User, User.id == Reminder.user_id)
                    .join(PatientRow, PatientRow.id == Reminder.patient_id)
                    .where(Occurrence.id.in_(claimed))
                    .order_by(Occurrence.next_at, Occurrence.id)
                )
            ).all()
            messages: list[tuple[str, Occurrence, Reminder, Reply]] = []
            reached = await self._reached(session, [row[0] for row in rows], now)
            for occurrence, reminder, zone, label in rows:
                zone = zone or self.default_time_zone
                message = await self._advance(session, occurrence, reminder, zone, label, now, reached)
                if message is not None:
                    purpose, reply = message
                    messages.append((f"{occurrence.id}:{purpose}", occurrence, reminder, reply))
            # Never sent twice, never blocking: a key already written is logged and left out (one read).
            written: set[str] = set()
            if messages:
                wanted = [key for key, *_ in messages]
                written = set(await session.scalars(select(Delivery.key).where(Delivery.key.in_(wanted))))
            keys = []
            lease_until = self.lease_now() + self.lease
            for key, occurrence, reminder, reply in messages:
                if key in written:
                    log.error("delivery %s already exists; not sent again", key)
                    continue
                session.add(
                    Delivery(
                        key=key,
                        occurrence_id=occurrence.id,
                        chat_key=reminder.chat_key,
                        text=reply.text,
                        buttons=_stored(reply),
                        state=DeliveryState.QUEUED,
                        attempts=0,
                        created_at=now,
                        owner=self.owner,
                        lease_until=lease_until,
                    )
                )
                keys.append(key)
            return keys

    async def _claim_left(self) -> list[Item]:
        """What was left in flight, taken by one conditional UPDATE: rows 'queued' or 'sending' whose
        lease expired (or that this outbox's own broken-off run left; rows from before leases have
        none), and retries whose time has come. A row taken from 'sending' may have reached the
        user: it goes with the may-repeat note."""
        now, lease_now = self.now(), self.lease_now()
        claimable = and_(
            _D.state.in_([*_IN_HAND, DeliveryState.RETRY]),
            or_(_D.lease_until.is_(None), _D.lease_until < lease_now, _D.owner == self.owner),
            or_(_D.state != DeliveryState.RETRY, _D.next_try_at <= now),
            self._ours(_D.chat_key),
        )
        async with self.storage.session() as session:  # a read first: nothing is written when none is left
            keys = list(
                await session.scalars(select(_D.key).where(claimable).order_by(_D.created_at).limit(self.batch))
            )
        if not keys:
            return []
        async with self.storage.engine.begin() as connection:
            claimed: dict[str, str] = dict(
                (
                    await connection.execute(
                        update(_DELIVERIES)
                        .where(_D.key.in_(_in_key_order(and_(_D.key.in_(keys), claimable), skip_locked=True)))
                        .values(
                            owner=self.owner,
                            lease_until=lease_now + self.lease,
                            state=case((_D.state == DeliveryState.SENDING, _D.state), else_=DeliveryState.QUEUED),
                        )
                        .returning(_D.key, _D.state)
                    )
                ).all()
            )
        noted = [key for key in keys if claimed.get(key) == DeliveryState.SENDING]
        return await self._load(noted + [key for key in keys if claimed.get(key) == DeliveryState.QUEUED], set(noted))

    async def _load(self, keys: Sequence[str], noted: frozenset[str] | set[str] = frozenset()) -> list[Item]:
        """The claimed rows, in order; those their occurrence no longer wants are dropped (one write)."""
        if not keys:
            return []
        async with self.storage.session() as session:
            rows = (
                await session.execute(
                    select(Delivery, Occurrence.state, Occurrence.kind)
                    .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
                    .where(Delivery.key.in_(keys))
                )
            ).all()
        found = {delivery.key: (delivery, state, kind) for delivery, state, kind in rows}
        items, dropped = [], []
        for key in keys:
            if key not in found:
                continue
            delivery, occurrence_state, kind = found[key]
            if _outdated(key, occurrence_state, kind):
                dropped.append(key)
                continue
            marked = delivery.state == DeliveryState.SENDING
            items.append(
                Item(key, delivery.chat_key, delivery.text, delivery.buttons, delivery.attempts, key in noted, marked)
            )
        if dropped:
            async with self.storage.engine.begin() as connection:
                await connection.execute(
                    update(_DELIVERIES)
                    .where(_D.key.in_(_in_key_order(and_(_D.key.in_(dropped), _D.owner == self.owner))))
                    .values(state=DeliveryState.DROPPED, lease_until=None)
                )
        return items

    async def _write(self, marks: Sequence[str], confirmed: Sequence[dict[str, Any]]) -> set[str]:
        """One transaction: rows about to be handed over marked 'sending' (only those still this
        outbox's: a row whose lease expired and that another replica took is not sent here), and the
        confirmations waiting. Returns the keys marked."""
        kept: set[str] = set()
        async with self.storage.engine.begin() as connection:
            if self.storage.engine.sync_engine.dialect.name == "postgresql":  # its rows locked in key order
                every = [*marks, *(row["the_key"] for row in confirmed)]
                await connection.execute(_in_key_order(_D.key.in_(every)))
            if marks:
                kept = set(
                    await connection.scalars(
                        update(_DELIVERIES)
                        .where(_D.key.in_(marks), _D.owner == self.owner, _D.state.in_(_IN_HAND))
                        .values(state=DeliveryState.SENDING, lease_until=self.lease_now() + self.lease)
                        .returning(_D.key)
                    )
                )
            if confirmed:
                await connection.execute(_SENT, list(confirmed))
        return kept

    async def _renew(self) -> None:
        """The lease on every row this outbox holds, moved on (one statement)."""
        async with self.storage.engine.begin() as connection:
            await connection.execute(
                update(_DELIVERIES)
                .where(
                    _D.key.in_(_in_key_order(and_(_D.owner == self.owner, _D.state.in_(_IN_HAND)), skip_locked=True))
                )
                .values(lease_until=self.lease_now() + self.lease)
            )

    async def _failed(self, delivery: Item, error: DeliveryError) -> None:
        attempts = delivery.attempts + 1
        give_up = error.permanent or attempts >= GIVE_UP_AFTER
        wait = RETRY_AFTER * min(2 ** (attempts - 1), 60)
        log.warning("delivery %s failed (%s)%s", delivery.key, error, ", giving up" if give_up else "")
        async with self.storage.session() as session, session.begin():
            if error.blocked:  # never deliverable again: the chat's reminders pause (told on the next message)
                blocked = select(_REMINDERS.c.id).where(
                    _REMINDERS.c.chat_key == delivery.chat_key, _REMINDERS.c.status == "active"
                )
                await session.execute(
                    update(_OCCURRENCES)
                    .where(_OCCURRENCES.c.reminder_id.in_(blocked), _OCCURRENCES.c.state.in_(ACTIVE_STATES))
                    .values(next_at=None)
                )
                await session.execute(
                    update(_REMINDERS)
                    .where(_REMINDERS.c.chat_key == delivery.chat_key, _REMINDERS.c.status == "active")
                    .values(status="blocked")
                )
            await session.execute(
                update(Delivery)
                .where(Delivery.key == delivery.key)
                .values(
                    state=DeliveryState.FAILED if give_up else DeliveryState.RETRY,
                    attempts=attempts,
                    next_try_at=None if give_up else self.now() + wait,
                    lease_until=None,
                )
            )

    async def undelivered_notice(self, session: DbSession, user_id: int) -> list[Reply]:
        """Once, on the user's next message after their reminders paused because sends were refused
        (the bot was blocked): they are told, and the reminders stay paused until resumed."""
        paused = await session.execute(
            update(_REMINDERS)
            .where(_REMINDERS.c.user_id == user_id, _REMINDERS.c.status == "blocked")
            .values(status="paused")
            .returning(_REMINDERS.c.id)
        )
        return [Reply(words.PAUSED_NOTICE)] if paused.first() is not None else []


def _outdated(key: str, occurrence_state: str, kind: str) -> bool:
    """A queued or retried message its occurrence no longer wants: stopped, or a reminder already
    answered (a missed-dose message, purpose 'm', is always sent)."""
    if occurrence_state == OccurrenceState.CANCELLED:
        return True
    if key.endswith(
        (f":{Purpose.MISSED}", f":{Purpose.UNCONFIRMED}")
    ):  # missed-dose guidance, the unconfirmed question
        return False
    return occurrence_state in ANSWERED_STATES or (kind == "lab" and occurrence_state == OccurrenceState.DONE)


def stored_buttons(buttons: Any) -> tuple[tuple[Button, ...], ...]:
    """Rows of [label, data] as stored back into buttons."""
    return tuple(tuple(Button(label, data) for label, data in row) for row in buttons)
