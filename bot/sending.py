"""Sending reminders through Telegram: within its limits, retried, and failing clearly.

Telegram allows about 30 messages per second overall and one per second to a chat; the limiters
are aiolimiter's leaky buckets (the library python-telegram-bot's own rate limiter uses). The overall
limit is the bot's, not a process's: `BotPace` paces every message of this replica (replies through
`BotRateLimiter`, python-telegram-bot's AIORateLimiter with its overall bucket replaced, and
reminders) at its share among the live replicas, counted by heartbeats (`SharedLimit`,
bot/storage/replicas.py).
`RetryAfter` waits as long as Telegram asks; time-outs and network errors back off exponentially
with jitter (tenacity). A message retried after a time-out may already have arrived (Telegram
has no idempotent send), so the retry carries the may-repeat note. An answer that will never
change (the user blocked the bot, the chat is gone) is a permanent failure, not retried; a block
(Forbidden) also pauses the user's reminders (bot.reminders).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import AIORateLimiter
from telegram.warnings import PTBDeprecationWarning
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bot.reminders import Buttons, DeliveryError
from bot.storage import Storage
from bot.storage.replicas import HEARTBEAT, beat, leave
from flows.reminders import MAY_REPEAT
from flows.replies import Reply

log = logging.getLogger("hemadose.sending")

OVERALL_PER_SECOND = 30
PER_CHAT_PER_SECOND = 1
JITTER_SHARE = 0.9  # of the bot's limit used: the rest absorbs the jitter between our pace and Telegram's count
LONGEST_WAIT = 30.0  # seconds; a RetryAfter asking more is retried by the scheduler, not slept through
CHAT_LIMITERS_KEPT = 10_000  # the most recently used chats keep their limiter; memory stays bounded
JSONDict = dict[str, Any]  # a Bot API answer, as python-telegram-bot's rate limiters get it
_backoff = wait_exponential_jitter(multiplier=0.5, max=30)


def _wait_asked(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # int now, a timedelta in a later major version: both read
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        after = error.retry_after
    return after.total_seconds() if isinstance(after, dt.timedelta) else float(after)


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome is not None else None
    if isinstance(error, RetryAfter):
        return _wait_asked(error)
    return _backoff(state)


REPLY_ATTEMPTS = 5  # a reply's send: at 20% of calls failing, 1 in 3,000 still fails (then the sweep sends it)


async def send_retried(send: Callable[[bool], Awaitable[object]], attempts: int = REPLY_ATTEMPTS) -> None:
    """A reply's send, retried as a reminder's is: time-outs and network errors back off with jitter.
    `send(noted)`: `noted` once an attempt timed out (the message may have arrived: the retry carries
    the may-repeat note). A 429 was retried already by the rate limiter; BadRequest and Forbidden are final."""
    timed_out = False
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        retry=retry_if_exception_type(NetworkError) & retry_if_not_exception_type(BadRequest),
        wait=_backoff,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            try:
                await send(timed_out)
            except TimedOut:
                timed_out = True
                raise


def chat_id(chat_key: str) -> int:
    """'tg:<chat>:<user>' -> the Telegram chat id."""
    return int(chat_key.split(":")[1])


class BotPace(AsyncLimiter):
    """This replica's share of the bot's overall limit, one message at a time (no bursts).

    A leaky bucket of capacity `per_second` (aiolimiter's default use) lets a burst of 30 through at
    once and then 30 more within the same second: up to twice the limit in a sliding second, per
    replica. Here the bucket holds one message and leaks at the share's rate, so `n` replicas at
    rate `r` each put at most `n * (1 + r)` messages in any second; the share is therefore
    `(0.9 * per_second - n) / n`: a tenth of the limit is left for jitter between the pace and the
    arrival at Telegram (paced at 28/s, some seconds got 31 to 33 at the loopback Bot API on a busy
    machine; each 429 then paused all sending for a second). 26/s alone, 12.5/s each for two.
    """

    def __init__(self, per_second: float = OVERALL_PER_SECOND, period: float = 1.0) -> None:
        self.per_second = per_second
        self.period = period  # the limit's window in seconds (Telegram's is 1; tests shorten it)
        self.replicas = 1
        self.ready_at = 0.0  # time.monotonic() before which nothing is sent (`hold`)
        super().__init__(1, period / self.rate(1))

    def rate(self, replicas: int) -> float:
        """Messages per `period` for each of `replicas` (never below half the even split)."""
        return max(JITTER_SHARE * self.per_second - replicas, self.per_second / 2) / replicas

    def share(self, replicas: int) -> None:
        """Pace at the share of `replicas` from now on (waiters already queued included)."""
        self.replicas = max(1, replicas)
        rate = self.rate(self.replicas)
        self.time_period = self.period / rate
        self._rate_per_sec = rate / self.period  # aiolimiter's leak rate, fixed at its construction

    def hold(self, seconds: float) -> None:
        """Send nothing for `seconds`: a replica joining waits until the others have seen it."""
        self.ready_at = time.monotonic() + seconds

    async def acquire(self, amount: float = 1) -> None:
        if (wait := self.ready_at - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        await super().acquire(amount)


class BotRateLimiter(AIORateLimiter):
    """python-telegram-bot's AIORateLimiter (it waits out a 429 and sends again) with its overall bucket
    replaced by this replica's `BotPace` (None: no overall limit, e.g. a test Bot API)."""

    def __init__(self, pace: BotPace | None, max_retries: int = 0) -> None:
        super().__init__(max_retries=max_retries)
        self.pace = pace
        self._base_limiter = pace

    async def _run_request(
        self,
        chat: bool,
        group: str | int | bool,
        allow_paid_broadcast: bool,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
    ) -> bool | JSONDict | list[JSONDict]:
        """AIORateLimiter takes the overall slot and then waits out a 429's pause: the slots granted
        during the pause (a second's worth, to the sends waiting) all went at its end at once, past the
        limit, and were refused in turn. Here a slot is taken only outside a pause, and one granted as a
        pause began is given up and taken again after it."""
        if self.pace is None or not chat or group or allow_paid_broadcast:
            return await super()._run_request(chat, group, allow_paid_broadcast, callback, args, kwargs)
        while True:
            await self._retry_after_event.wait()
            await self.pace.acquire()
            if self._retry_after_event.is_set():
                return await callback(*args, **kwargs)


class SharedLimit:
    """This replica's heartbeat, and its paces scaled to the number of live replicas after each one."""

    def __init__(self, storage: Storage, name: str, paces: list[BotPace]) -> None:
        self.storage = storage
        self.name = name
        self.paces = paces
        self.live = 0  # replicas seen at the last heartbeat (0: none yet)
        for pace in paces:  # nothing sent before the first heartbeat says how many share the limit
            pace.hold(HEARTBEAT.total_seconds())

    @classmethod
    def of(cls, storage: Storage, name: str, bot: Bot, sender: TelegramSender | None) -> SharedLimit:
        """The paces this process sends through: the bot's rate limiter's, or the reminder sender's own."""
        rate_limiter = getattr(bot, "rate_limiter", None)
        if isinstance(rate_limiter, BotRateLimiter):
            paces = [rate_limiter.pace] if rate_limiter.pace is not None else []
        else:
            paces = [sender.overall] if sender is not None and sender.overall is not None else []
        return cls(storage, name, paces)

    async def beat(self) -> int:
        """Write the heartbeat and rescale; a replica joining others holds its sends one heartbeat, until
        they have counted it (else both would send at the full rate until then)."""
        async with self.storage.session() as session, session.begin():
            live = await beat(session, self.name)
        for pace in self.paces:
            if self.live == 0:  # the first heartbeat: alone, send at once; else after the others' next
                pace.hold(HEARTBEAT.total_seconds() if live > 1 else 0)
            pace.share(live)
        if live != self.live and self.paces:
            rate = self.paces[0].rate(live) / self.paces[0].period
            log.info("%d replica(s) share the bot's limit: sending at most %.1f messages/s", live, rate)
        self.live = live
        return live

    async def leave(self) -> None:
        async with self.storage.session() as session, session.begin():
            await leave(session, self.name)


class TelegramSender:
    def __init__(
        self,
        bot: Bot,
        *,
        limits: bool = True,
        attempts: int = 6,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        period: float = 1.0,
    ) -> None:
        self.bot = bot
        self.limits = limits
        self.attempts = attempts
        self.sleep = sleep
        self.period = period  # the limiters' window in seconds (Telegram's is 1; tests shorten it)
        # The bot's rate limiter paces every message of the process (`BotRateLimiter`); else our own.
        own = not isinstance(getattr(bot, "rate_limiter", None), BotRateLimiter)
        self.overall: BotPace | None = BotPace(OVERALL_PER_SECOND, period) if own else None
        self.chats: OrderedDict[int, AsyncLimiter] = OrderedDict()
        self.paced: set[int] = set()  # chats whose next send already waited for its chat's slot (`pace`)

    def _chat_limiter(self, chat: int) -> AsyncLimiter:
        limiter = self.chats.pop(chat, None) or AsyncLimiter(PER_CHAT_PER_SECOND, self.period)
        self.chats[chat] = limiter
        if len(self.chats) > CHAT_LIMITERS_KEPT:
            gone, _ = self.chats.popitem(last=False)
            self.paced.discard(gone)
        return limiter

    async def pace(self, chat_key: str) -> None:
        """Wait for the chat's own slot (one message a second) before the send itself.

        The outbox calls this before it takes one of its bounded send slots, so a chat waiting on
        its own limit holds no slot and delays no other chat; the send that follows then takes
        only the overall slot. Sends to one chat come one at a time (the outbox's chat queue).
        """
        if not self.limits:
            return
        chat = chat_id(chat_key)
        await self._chat_limiter(chat).acquire()
        self.paced.add(chat)

    async def _within_limits(self, chat: int) -> None:
        if not self.limits:
            return
        if chat in self.paced:  # its chat slot was taken by `pace` (a retry takes a fresh one)
            self.paced.discard(chat)
        else:
            await self._chat_limiter(chat).acquire()
        if self.overall is not None:
            await self.overall.acquire()

    async def __call__(self, chat_key: str, text: str, buttons: Buttons) -> int | None:
        chat = chat_id(chat_key)
        markup = None
        if buttons:
            markup = InlineKeyboardMarkup(
                [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in buttons]
            )
        timed_out = False
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            retry=retry_if_exception_type((RetryAfter, TimedOut, NetworkError)),
            wait=_wait,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    body = f"{MAY_REPEAT}\n{text}" if timed_out and not text.startswith(MAY_REPEAT) else text
                    await self._within_limits(chat)
                    try:
                        message = await self.bot.send_message(chat, body, reply_markup=markup)
                    except BadRequest as error:  # a NetworkError in python-telegram-bot, but final
                        raise DeliveryError(f"BadRequest: {error.message}", permanent=True) from error
                    except TimedOut:
                        timed_out = True
                        raise
                    except RetryAfter as error:
                        asked = _wait_asked(error)
                        if asked > LONGEST_WAIT:  # not inside the scheduler's run: later
                            raise DeliveryError(f"RetryAfter {asked:.0f} s") from error
                        raise
                    return message.message_id
        except Forbidden as error:  # the user blocked the bot (or left the chat): their reminders pause
            raise DeliveryError(f"Forbidden: {error.message}", blocked=True) from error
        except (InvalidToken, ChatMigrated) as error:
            raise DeliveryError(type(error).__name__, permanent=True) from error
        except TelegramError as error:
            raise DeliveryError(type(error).__name__) from error
        return None  # pragma: no cover - the loop returns or raises


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """A reply's buttons as Telegram's inline keyboard (None: no buttons, no keyboard)."""
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in reply.buttons]
    )
