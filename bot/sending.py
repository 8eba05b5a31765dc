"""Sending reminders through Telegram: within its limits, retried, and failing clearly.

Telegram allows about 30 messages per second overall and one per second to a chat; the limiters
are aiolimiter's leaky buckets (the library python-telegram-bot's own rate limiter uses).
`RetryAfter` waits as long as Telegram asks; time-outs and network errors back off exponentially
with jitter (tenacity). A message retried after a time-out may already have arrived (Telegram
has no idempotent send), so the retry carries the may-repeat note. An answer that will never
change (the user blocked the bot, the chat is gone) is a permanent failure, not retried; a block
(Forbidden) also pauses the user's reminders (bot.reminders).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable

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
from telegram.warnings import PTBDeprecationWarning
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from bot.reminders import Buttons, DeliveryError
from flows.reminders import MAY_REPEAT

OVERALL_PER_SECOND = 30
PER_CHAT_PER_SECOND = 1
LONGEST_WAIT = 30.0  # seconds; a RetryAfter asking more is retried by the scheduler, not slept through
CHAT_LIMITERS_KEPT = 10_000  # the most recently used chats keep their limiter; memory stays bounded
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


def chat_id(chat_key: str) -> int:
    """'tg:<chat>:<user>' -> the Telegram chat id."""
    return int(chat_key.split(":")[1])


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
        self.overall = AsyncLimiter(OVERALL_PER_SECOND, period)
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
