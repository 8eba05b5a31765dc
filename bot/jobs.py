"""The Application's repeating jobs: due reminders, the replica's heartbeat (its share of Telegram's
limit), and in webhook mode the lease of the replies being sent and the sweep of replies a killed replica
left. Each job logs a failure and tries again on its next run: what is due lives in the database.
"""

from __future__ import annotations

import logging

from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ContextTypes

from bot.sending import SharedLimit, TelegramSender, chat_id, keyboard
from bot.service import ChatService
from bot.storage.replicas import HEARTBEAT

log = logging.getLogger("hemadose.telegram")


REMINDER_TICK_SECONDS = 20


async def resend_left(application: Application, service: ChatService) -> int:  # type: ignore[type-arg]
    """The sweep (webhook mode): replies of updates handled by a replica that was killed or stopped
    before sending them, once its lease expired, sent with the may-repeat note, for updates Telegram
    will not post again. How many updates' replies were sent (or given up: the chat refuses them)."""
    done = 0
    left = await service.left_replies()
    try:
        for update_id, chat_key, replies in left:
            try:
                for reply in replies:
                    await application.bot.send_message(chat_id(chat_key), reply.text, reply_markup=keyboard(reply))
            except (RetryAfter, NetworkError) as error:
                if not isinstance(error, BadRequest):  # Telegram or the network, for now: the lease runs out, again
                    log.warning("could not re-send an update's replies: %s", type(error).__name__)
                    service.replies_not_sent(update_id)
                    continue
                log.warning("gave up re-sending an update's replies: %s", type(error).__name__)
            except TelegramError as error:  # blocked, chat gone: an answer that will not change
                log.warning("gave up re-sending an update's replies: %s", type(error).__name__)
            await service.replies_sent(update_id)
            done += 1
    finally:  # stopped part way: what was not sent waits for its lease to expire, as before
        for update_id, _, _ in left:
            service.replies_not_sent(update_id)
    if done:
        await service.flush_sent()
    return done


def start_reminders(application: Application, service: ChatService, *, limits: bool = True) -> None:  # type: ignore[type-arg]
    """Reminders go out through this bot: the sender, and a job that runs what is due every few seconds.

    The first run (at once) also re-sends what a crash left in flight; python-telegram-bot's JobQueue
    (APScheduler) only ticks: what is due lives in the database, not in the job queue.
    """
    service.reminders.sender = TelegramSender(application.bot, limits=limits)
    service.reminders.chats = "tg:"

    async def tick(context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await service.reminders.run_due()
        except Exception as error:  # the next tick tries again; nothing is lost (the database holds it all)
            log.error("reminder run failed: %s", type(error).__name__)

    if application.job_queue is None:  # pragma: no cover - the job-queue extra is a dependency
        raise RuntimeError("python-telegram-bot's job-queue extra is missing: install python-telegram-bot[job-queue]")
    application.job_queue.run_repeating(tick, interval=REMINDER_TICK_SECONDS, first=0, name="reminders")


def share_limit(application: Application, service: ChatService) -> None:  # type: ignore[type-arg]
    """Telegram's overall limit is the bot's: a heartbeat every few seconds counts the live replicas and
    scales this one's pace to its share (bot/sending.py, bot/storage/replicas.py)."""
    sender = service.reminders.sender
    shared = SharedLimit.of(
        service.storage,
        service.reminders.owner,
        application.bot,
        sender if isinstance(sender, TelegramSender) else None,
    )
    application.bot_data["shared_limit"] = shared

    async def heartbeat(context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await shared.beat()
        except Exception as error:  # the next heartbeat tries again; meanwhile the last share holds
            log.error("replica heartbeat failed: %s", type(error).__name__)

    assert application.job_queue is not None  # start_reminders checked it
    application.job_queue.run_repeating(heartbeat, interval=HEARTBEAT.total_seconds(), first=0, name="heartbeat")


def keep_replies_moving(application: Application, service: ChatService) -> None:  # type: ignore[type-arg]
    """Webhook mode: the replies this replica is sending keep their lease (`RepliesInHand`, renewed four
    times a lease), and the sweep (`resend_left`, at start-up and every half lease) sends what a killed
    replica left once its lease expired. The sweep has a job of its own: inside the reminders' tick it
    waited for a whole reminder run (a thousand due at the bot's pace: over a minute, the ticks between
    skipped), and the replies with it."""

    async def renew(context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await service.sending.renew()
        except Exception as error:  # the next renewal tries again; a lease that expires meanwhile: a noted copy
            log.error("renewing reply leases failed: %s", type(error).__name__)

    async def sweep(context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await resend_left(application, service)
        except Exception as error:  # the next sweep tries again; the replies stay until sent
            log.error("re-sending left replies failed: %s", type(error).__name__)

    assert application.job_queue is not None  # start_reminders checked it
    lease = service.reply_lease.total_seconds()
    application.job_queue.run_repeating(renew, interval=lease / 4, first=lease / 4, name="reply leases")
    application.job_queue.run_repeating(sweep, interval=lease / 2, first=0, name="left replies")
