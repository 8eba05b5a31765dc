"""The python-telegram-bot `Application`: access policy, handlers, keyboards and the error handler.

Wired as in python-telegram-bot's examples: handlers read the shared `ChatService` from
`bot_data`; every text and button goes through it, and it routes them by the one table of commands
and buttons (flows/routes.py), so Telegram and the terminal chat answer alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial

from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    BaseRateLimiter,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest

from bot.jobs import keep_replies_moving, share_limit, start_reminders
from bot.limits import SLOW_DOWN, FloodGate
from bot.sending import SharedLimit, keyboard, send_retried
from bot.service import PRIVATE_ONLY, ChatService
from bot.storage.updates import InFlightError
from flows.reminders import MAY_REPEAT
from flows.replies import Photo, Reply
from flows.routes import menu

log = logging.getLogger("hemadose.telegram")

# The command menu is the routing table's (flows/routes.py): the same commands as the terminal's.
COMMANDS = [BotCommand(command, description) for command, description in menu()]
REFUSAL = "Sorry, this assistant is private to its care team. Ask its operator to add your Telegram user id."
FAULT = "Something went wrong on my side. What you entered is kept: send your last answer again, or /help."
# After the answer was taken (committed) and its reply could not be sent (long polling: nothing kept to
# send again). Not FAULT: an answer sent again would be read as the answer to the question now open.
REPLY_NOT_SENT = "My last reply did not reach you. Your answer was taken: send /help to see the question now open."
NOT_TEXT = "I can only read text and button presses. Please type your answer."
# A button pressed on a message sent inline (in another chat) comes with no chat to answer in:
# the answer is the button's own pop-up (at most 200 characters).
EDITED = "I read each answer once, as it comes, not edits: send the corrected answer as a new message."
NO_CHAT = "This button works only in the private chat with HemaDose: open it there."


def user_ref(update: Update) -> str:
    assert update.effective_user is not None
    return f"tg:{update.effective_user.id}"


def chat_ref(update: Update) -> str:
    """One conversation per user in each chat, so users never share a consultation."""
    assert update.effective_chat is not None
    assert update.effective_user is not None
    return f"tg:{update.effective_chat.id}:{update.effective_user.id}"


async def send(update: Update, context: ContextTypes.DEFAULT_TYPE, replies: Iterable[Reply]) -> None:
    assert update.effective_chat is not None
    for reply in replies:
        await send_retried(partial(_send_one, context, update.effective_chat.id, reply))


async def _send_one(context: ContextTypes.DEFAULT_TYPE, chat: int, reply: Reply, noted: bool) -> None:
    """One reply: a message, a file (/export: sendDocument) or a chart (sendPhoto), the text its caption."""
    markup = keyboard(reply)
    # A retry after a time-out carries the note, once (a reply sent again after a kill has it already).
    text = f"{MAY_REPEAT}\n{reply.text}" if noted and not reply.text.startswith(MAY_REPEAT) else reply.text
    if reply.document is not None:
        file, name = reply.document.content, reply.document.filename
        await context.bot.send_document(chat, file, filename=name, caption=text, reply_markup=markup)
    elif isinstance(reply, Photo):
        await context.bot.send_photo(chat, reply.png, filename=reply.filename, caption=text, reply_markup=markup)
    else:
        await context.bot.send_message(chat, text, reply_markup=markup)


UPLOAD_TOO_BIG = "That file is {size:,} bytes; an import takes at most {limit:,}. Nothing was imported."


async def on_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A file sent to the bot: a CSV or FHIR Bundle to import (bot/exports/importing.py)."""
    from bot.exports.importing import MAX_BYTES

    message = update.message
    if message is None or message.document is None:
        return
    document = message.document
    if document.file_size is not None and document.file_size > MAX_BYTES:
        await context.bot.send_message(chat_of(update), UPLOAD_TOO_BIG.format(size=document.file_size, limit=MAX_BYTES))
        return
    file = await context.bot.get_file(document.file_id)
    content = bytes(await file.download_as_bytearray())
    name = document.file_name or "the file"
    replies = await service_of(context).import_document(
        user_ref(update), chat_ref(update), name, content, update_id=once(update, context)
    )
    await send(update, context, replies)


def service_of(context: ContextTypes.DEFAULT_TYPE) -> ChatService:
    service: ChatService = context.bot_data["service"]
    return service


# bot_data's flag, set by webhook mode (bot/webhook.py): updates may arrive twice or at two replicas at
# once, so each is handled once and each chat's one at a time (`ChatService.handle(update_id=...)`).
ONCE = "updates_once"
# bot_data's set of update ids to answer 503 (webhook mode): handled, their replies still being sent by
# the replica that handled them (its lease runs), so Telegram must post them again later.
RETRY_LATER = "updates_retry_later"


def once(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    """The update's id where it must be handled once across replicas (webhook mode), else None."""
    return update.update_id if context.bot_data.get(ONCE) else None


async def answer(
    update: Update, context: ContextTypes.DEFAULT_TYPE, text: str | None = None, button: str | None = None
) -> None:
    """Handle the text or button and send the replies; in webhook mode the replies are kept with the
    update until sent, then marked sent (one statement), so a replica killed in between loses none."""
    service = service_of(context)
    update_id = once(update, context)
    try:
        replies = await service.handle(user_ref(update), chat_ref(update), text, button, update_id=update_id)
    except InFlightError:  # another replica may be sending its replies now: Telegram posts it again later
        context.bot_data.setdefault(RETRY_LATER, set()).add(update.update_id)
        return
    try:
        await send(update, context, replies)
    except TelegramError as error:
        if update_id is None:  # long polling: nothing kept to send again; the error handler tells the user
            raise RepliesNotSentError from error
        # Kept with the update: once its lease expires the sweep sends them, with the may-repeat note.
        # No FAULT ("send your last answer again"): the chat has taken that answer and asks the next one.
        service.replies_not_sent(update_id)
        log.warning("replies not sent (%s): the sweep sends them once their lease expires", type(error).__name__)
        return
    except BaseException:
        if update_id is not None:
            service.replies_not_sent(update_id)
        raise
    if update_id is not None and replies:
        await service.replies_sent(update_id)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.message is None:  # an edit of an earlier message: answers are read once, as they come
        await context.bot.send_message(chat_of(update), EDITED)
        return
    await answer(update, context, text=update.message.text)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    try:
        await query.answer()  # stops the button's spinner
    except TelegramError:  # answered already: Telegram posted the update again (webhook), or it is too old
        log.warning("could not answer a button press")
    data = query.data if isinstance(query.data, str) else ""  # a game's button has no data: refused as damaged
    await answer(update, context, button=data)


async def on_other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_chat is not None:
        await context.bot.send_message(update.effective_chat.id, NOT_TEXT)


def access_guard(
    allowed: frozenset[int] | None, flood: FloodGate | None = None
) -> TypeHandler[Update, ContextTypes.DEFAULT_TYPE, None]:
    """Every update passes here first: a private chat, an allowed user id (None: everyone, which
    `hemadose run` refuses to start with), and a pace the user is told about when it is too fast."""
    flood = flood if flood is not None else FloodGate()

    async def guard(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is None:  # an inline message's button, an inline query: no chat to answer in
            if update.callback_query is not None:
                await update.callback_query.answer(NO_CHAT, show_alert=True)
            raise ApplicationHandlerStop
        if chat.type != chat.PRIVATE:  # a group, supergroup or channel: one line, nothing read or kept
            if update.callback_query is not None:
                await update.callback_query.answer()
            try:
                await context.bot.send_message(chat.id, PRIVATE_ONLY)
            except TelegramError:  # a channel the bot may not post in, a group it was removed from
                log.warning("could not answer in a chat that is not private")
            raise ApplicationHandlerStop
        user = update.effective_user
        if allowed is None or (user is not None and user.id in allowed):
            return
        log.warning("refused an update from a user not on the allowed list")
        if update.callback_query is not None:
            await update.callback_query.answer()
        if update.effective_chat is not None:
            await context.bot.send_message(update.effective_chat.id, REFUSAL)
        raise ApplicationHandlerStop

    async def checked(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await guard(update, context)
        user = update.effective_user
        if user is not None and flood.arrived(user.id, update.update_id):  # still handled, after the note
            await context.bot.send_message(chat_of(update), SLOW_DOWN)

    return TypeHandler(Update, checked)


def chat_of(update: Update) -> int:
    assert update.effective_chat is not None
    return update.effective_chat.id


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log what failed, never what the user typed; tell them their answers are safe."""
    error = context.error
    transport = isinstance(error, TelegramError | RepliesNotSentError)  # Telegram's answer: no traceback needed
    cause = f" ({type(error.__cause__).__name__})" if isinstance(error, RepliesNotSentError) else ""
    log.error("handler failed: %s%s", type(error).__name__, cause, exc_info=None if transport else error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            text = REPLY_NOT_SENT if isinstance(error, RepliesNotSentError) else FAULT
            await context.bot.send_message(update.effective_chat.id, text)
        except TelegramError:
            log.error("could not tell the user about the failure")


async def _register_commands(application: Application) -> None:  # type: ignore[type-arg]
    await application.bot.set_my_commands(COMMANDS)


class RepliesNotSentError(Exception):
    """An update was handled (its answer taken) and its replies could not be sent (long polling)."""


class StartupError(Exception):
    """The bot could not start for a reason its operator can fix; the message is one line."""


def serve(application: Application, database_url: str, time_zone: str) -> None:  # type: ignore[type-arg]
    """Open the storage, the service and the reminders once the bot is online; close them when it stops.

    python-telegram-bot runs post_shutdown after every stop, a failed start-up (no network, a bad
    token) included, so closing must cope with a service that was never opened.
    """

    async def open_service(app: Application) -> None:  # type: ignore[type-arg]
        from bot.storage import open_storage

        try:
            storage = await open_storage(database_url)
        except Exception as exc:  # a missing driver, a file that cannot be written, a server that refuses
            first = (str(exc).strip().splitlines() or [""])[0]
            raise StartupError(f"cannot open the database: {type(exc).__name__}: {first}") from exc
        service = ChatService(storage, time_zone)
        app.bot_data["service"] = service
        start_reminders(app, service)
        share_limit(app, service)
        keep_replies_moving(app, service)
        await app.bot.set_my_commands(COMMANDS)

    async def close_service(app: Application) -> None:  # type: ignore[type-arg]
        service: ChatService | None = app.bot_data.pop("service", None)
        shared: SharedLimit | None = app.bot_data.pop("shared_limit", None)
        if shared is not None:
            try:  # the other replicas take its share at their next heartbeat
                await shared.leave()
            except Exception as error:  # then its heartbeat simply expires
                log.error("could not leave the replicas' table: %s", type(error).__name__)
        if service is not None:
            await service.flush_sent()  # the replies sent since the last mark
            await service.storage.close()

    application.post_init = open_service
    application.post_shutdown = close_service


def build_application(
    token: str,
    service: ChatService | None,
    allowed_users: frozenset[int] | None,
    *,
    request: BaseRequest | None = None,
    polling: bool = True,
    flood: FloodGate | None = None,
    base_url: str | None = None,
    rate_limiter: BaseRateLimiter | None = None,  # type: ignore[type-arg]
) -> Application:  # type: ignore[type-arg]
    """The bot; `service` may be set later in `bot_data['service']` (e.g. opened in post_init).
    `base_url`: the Bot API server (HEMADOSE_TELEGRAM_BASE_URL), e.g. https://api.telegram.org;
    `rate_limiter`: `hemadose run`'s, which waits out a 429 (RetryAfter) and sends the reply again."""
    builder: ApplicationBuilder = Application.builder().token(token)  # type: ignore[type-arg]
    if base_url is not None:
        builder = builder.base_url(f"{base_url}/bot").base_file_url(f"{base_url}/file/bot")
    if rate_limiter is not None:
        builder = builder.rate_limiter(rate_limiter)
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    if not polling:
        builder = builder.updater(None)
    builder = builder.post_init(_register_commands)
    application = builder.build()
    if service is not None:
        application.bot_data["service"] = service
    application.add_handler(access_guard(allowed_users, flood), group=-1)
    application.add_handler(MessageHandler(filters.TEXT, on_text))
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(MessageHandler(filters.Document.ALL, on_document))
    application.add_handler(MessageHandler(~filters.TEXT & ~filters.StatusUpdate.ALL, on_other))
    application.add_error_handler(on_error)
    return application
