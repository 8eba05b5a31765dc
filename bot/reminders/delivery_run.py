"""One run of the outbox's sending: a queue per chat sent in order by one worker, at most
`concurrency` sends in flight, a chat's own rate limit waited for without holding a send slot, and
the 'sending' marks and 'sent' confirmations written in groups (see bot/reminders/outbox.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol, cast

from bot.reminders.base import Buttons, DeliveryError
from flows import reminders as words

if TYPE_CHECKING:
    from bot.reminders.outbox import Outbox

log = logging.getLogger("hemadose.reminders")
CHUNK = 32  # 'sending' marks and 'sent' confirmations are written this many at a time
CONFIRM_WITHIN = 0.25  # seconds: a confirmation waits no longer than this for others to join it


class _Paced(Protocol):
    async def __call__(self, chat_key: str, /) -> None: ...


@dataclass(slots=True, eq=False)
class Item:
    """A claimed delivery in this run's hands."""

    key: str
    chat_key: str
    text: str
    buttons: Buttons
    attempts: int
    note: bool  # it may have reached the user already (taken over from 'sending'): sent with the note
    marked: bool  # written 'sending'
    in_slot: bool = False  # its chat's worker holds a send slot: it is handed over next
    ours: bool = True  # False: its lease expired and another replica took it; not sent here


class Run:
    """One run of the outbox: the chats' queues, the send slots, and the writes waiting to be grouped."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.slots = asyncio.Semaphore(outbox.concurrency)
        self.queues: dict[str, deque[Item]] = {}  # chat -> its claimed messages, in order (one worker each)
        self.pacing = 0  # workers waiting for their chat's own rate limit (holding no slot)
        self.in_hand = 0
        # Memory stays bounded. At Telegram's pace a replica holds no more than it sends in a few seconds,
        # so that another replica's tick finds the rest of a due batch and both send at their shares (one
        # replica had claimed 300 due at once and sent them at its half share, 12.3/s, the other idle).
        paced = bool(getattr(outbox.sender, "limits", False))
        self.most_in_hand = 2 * outbox.concurrency if paced else 2 * max(outbox.batch, outbox.concurrency)
        self.confirmed: list[dict[str, Any]] = []
        self.writing = asyncio.Lock()
        self.changed = asyncio.Event()
        self.delivered = 0
        self.in_flight = 0
        self.most_in_flight = 0  # for tests and the benchmark: the concurrency reached
        self.group: asyncio.TaskGroup | None = None
        self.flush_soon: asyncio.Task[None] | None = None

    async def run(self) -> int:
        outbox = self.outbox
        failure: BaseException | None = None
        try:
            async with asyncio.TaskGroup() as group:
                self.group = group
                renewing = group.create_task(self._renewing())
                try:
                    self._take(await outbox._claim_left())
                    while True:
                        await self._room()
                        keys = await outbox._claim_due(self.most_in_hand - self.in_hand)
                        if not keys:
                            break
                        self._take(await outbox._load(keys))
                    while self.queues:  # the slow chats drain; their leases are renewed meanwhile
                        await self._changed()
                finally:
                    renewing.cancel()
                    if self.flush_soon is not None:
                        self.flush_soon.cancel()  # the last flush, below, writes what it held
        except BaseExceptionGroup as errors:  # one kind of fault is raised as itself (callers catch it by type)
            failure = errors.exceptions[0] if len({type(e) for e in errors.exceptions}) == 1 else errors
        except BaseException as error:
            failure = error
        if failure is None or isinstance(failure, asyncio.CancelledError):
            # What the transport accepted is written even when the run is stopped (a shutdown).
            await asyncio.shield(self._flush())
        outbox.most_in_flight = max(outbox.most_in_flight, self.most_in_flight)
        if failure is not None:
            raise failure
        return self.delivered

    def _take(self, items: Sequence[Item]) -> None:
        assert self.group is not None
        for item in items:
            self.in_hand += 1
            queue = self.queues.get(item.chat_key)
            if queue is not None:
                queue.append(item)
                continue
            self.queues[item.chat_key] = deque([item])
            self.group.create_task(self._chat(item.chat_key))

    async def _changed(self) -> None:
        self.changed.clear()
        await self.changed.wait()

    async def _room(self) -> None:
        """Claim more only when a send slot would otherwise stand idle (fewer chats ready to send than
        slots), and never more than `most_in_hand` rows at once."""
        while len(self.queues) - self.pacing >= self.outbox.concurrency or self.in_hand >= self.most_in_hand:
            await self._changed()

    async def _renewing(self) -> None:
        while True:
            await asyncio.sleep(self.outbox.lease.total_seconds() / 3)
            await self.outbox._renew()

    async def _chat(self, chat_key: str) -> None:
        """One chat's messages in order: its own rate limit waited for outside the send slots."""
        queue = self.queues[chat_key]
        pace = cast(_Paced | None, getattr(self.outbox.sender, "pace", None))
        try:
            while queue:
                item = queue[0]
                if pace is not None:
                    self.pacing += 1
                    self.changed.set()
                    try:
                        await pace(chat_key)
                    finally:
                        self.pacing -= 1
                async with self.slots:
                    item.in_slot = True
                    if await self._mark(item):
                        await self._send(item)
                queue.popleft()
                self.in_hand -= 1
        finally:
            del self.queues[chat_key]
            self.changed.set()

    async def _mark(self, item: Item) -> bool:
        """Written 'sending' before it is handed over, with the other chats' next messages that also
        hold a send slot (at most `concurrency`, in one statement) and the confirmations waiting. False:
        it is no longer this outbox's. Only messages in a slot: a row marked 'sending' is re-sent with the
        may-repeat note after a crash, so marking the chats still waiting for their turn (their own
        second, a slot) put the note on messages that never left (issue 13: 185 of 1,002 noted in
        the kill test, 2 real repeats)."""
        if item.marked:
            return item.ours
        async with self.writing:
            if item.marked:
                return item.ours
            heads = (queue[0] for queue in self.queues.values() if queue and queue[0] is not item)
            chunk = [item, *islice((head for head in heads if head.in_slot and not head.marked), CHUNK - 1)]
            confirmed, self.confirmed = self.confirmed, []
            kept = await self.outbox._write([head.key for head in chunk], confirmed)
            for head in chunk:
                head.marked = True
                if head.key not in kept:
                    log.warning("delivery %s was taken over by another replica; not sent here", head.key)
                    head.ours = False
        return item.ours

    async def _send(self, item: Item) -> None:
        sender = self.outbox.sender
        assert sender is not None
        text = f"{words.MAY_REPEAT}\n{item.text}" if item.note else item.text
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            message_id = await sender(item.chat_key, text, item.buttons)
        except DeliveryError as error:
            await self.outbox._failed(item, error)
            return
        finally:
            self.in_flight -= 1
        self.confirmed.append(
            {"the_key": item.key, "sent_at": self.outbox.now(), "message_id": message_id, "attempts": item.attempts + 1}
        )
        self.delivered += 1
        if len(self.confirmed) >= CHUNK:
            await self._flush()
        elif self.flush_soon is None and self.group is not None:
            self.flush_soon = self.group.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        """Bounds how long an accepted message stays unconfirmed (what a crash would repeat, noted)."""
        await asyncio.sleep(CONFIRM_WITHIN)
        self.flush_soon = None
        await asyncio.shield(self._flush())

    async def _flush(self) -> None:
        async with self.writing:
            if self.confirmed:
                confirmed, self.confirmed = self.confirmed, []
                await self.outbox._write([], confirmed)
