"""`hemadose run --webhook URL`: updates posted by Telegram, on python-telegram-bot's own web server (tornado).

Built as python-telegram-bot's custom-webhook examples do (examples/customwebhookbot), so that the
server also answers the health checks of a load balancer or an orchestrator:

- `POST <the URL's path>`: one update. The `X-Telegram-Bot-Api-Secret-Token` header must equal
  HEMADOSE_WEBHOOK_SECRET (else 403). The update is handled before the answer: a 200 means its
  replies were sent, so an update a replica did not finish (killed, stopped) is posted again by
  Telegram, and its id (`processed_updates`) makes sure it is handled once across replicas. Its
  replies are kept with the id until sent: a post of an update whose replies the replica that
  handled it may still be sending (its lease runs) is answered 503, and Telegram posts it again;
  once the lease expired, the replica that gets it sends them with the may-repeat note (a 503
  holds no connection while the lease runs out, as waiting for it would; the sweep sends them
  too, should Telegram not post it again);
- `GET /healthz`: liveness, 200 while the process serves;
- `GET /readyz`: readiness, 200 only while the database answers a query (503 otherwise), so that a
  proxy sends updates to replicas that can handle them.

SIGTERM (or Ctrl-C): the server stops taking updates (the listening socket closes; a post on a
connection kept open is answered 503, which Telegram retries, at another replica), the updates in
hand are finished (their replies sent), the reminders stop, and the process exits 0. The webhook is
left set: the other replicas still serve it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import tornado.web
from sqlalchemy import text
from telegram import Update
from telegram.ext import Application, ContextTypes
from tornado.httpserver import HTTPServer

from bot.service import ChatService
from bot.settings import sqlite_file
from bot.telegram_app import ONCE, RETRY_LATER

log = logging.getLogger("hemadose.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
READY_TIMEOUT = 3.0  # seconds a readiness query may take before the replica counts as not ready
PRUNE_EVERY = 3600  # seconds between two prunings of the handled updates' ids


class InHand:
    """The updates being handled now; `closing` refuses new ones, `idle()` waits for the last one."""

    def __init__(self) -> None:
        self.count = 0
        self.closing = False
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.asynccontextmanager
    async def one(self) -> AsyncIterator[None]:
        self.count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()


def webhook_path(url: str) -> str:
    """The path the server takes updates on: the public URL's (a proxy forwards it unchanged)."""
    path = urlsplit(url).path.rstrip("/")
    return path or "/"


def url_problem(url: str) -> str | None:
    """Why `url` cannot be the webhook (Telegram posts to https only), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"--webhook: '{url}' is not a URL; e.g. https://bot.example.org/telegram"
    if webhook_path(url) in ("/healthz", "/readyz"):
        return f"--webhook: the path {webhook_path(url)} is the health check's; choose another, e.g. /telegram"
    return None


class UpdatePost(tornado.web.RequestHandler):
    """One update from Telegram, handled before it is acknowledged."""

    SUPPORTED_METHODS = ("POST",)

    def initialize(self, bot_app: Application, secret: str, in_hand: InHand) -> None:  # type: ignore[type-arg]
        self.bot_app = bot_app
        self.secret = secret.encode()
        self.in_hand = in_hand

    async def post(self) -> None:
        given = self.request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, self.secret):
            log.warning("refused a webhook post without the secret token")
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)
        if self.in_hand.closing:  # stopping: Telegram posts it again, to a replica that serves
            raise tornado.web.HTTPError(HTTPStatus.SERVICE_UNAVAILABLE)
        try:
            data = json.loads(self.request.body)
            update = Update.de_json(data, self.bot_app.bot)
        except Exception:  # not an update: nothing to handle, and nothing of it logged
            raise tornado.web.HTTPError(HTTPStatus.BAD_REQUEST) from None
        async with self.in_hand.one():
            # Errors of the handlers go to the application's error handler (the user is told): 200.
            await self.bot_app.process_update(update)
        retry_later: set[int] = self.bot_app.bot_data.get(RETRY_LATER, set())
        if update.update_id in retry_later:  # its replies are another replica's to send, for now
            retry_later.discard(update.update_id)
            raise tornado.web.HTTPError(HTTPStatus.SERVICE_UNAVAILABLE)
        self.set_status(HTTPStatus.OK)
        self.finish()


class Healthz(tornado.web.RequestHandler):
    """Liveness: the process serves."""

    def get(self) -> None:
        self.finish("ok\n")


class Readyz(tornado.web.RequestHandler):
    """Readiness: the database answers (and, for SQLite, its file is still there)."""

    def initialize(self, bot_app: Application, file: Path | None) -> None:  # type: ignore[type-arg]
        self.bot_app = bot_app
        self.file = file

    async def get(self) -> None:
        problem = await database_problem(self.bot_app, self.file)
        if problem is not None:
            log.warning("not ready: %s", problem)
            self.set_status(HTTPStatus.SERVICE_UNAVAILABLE)
            self.finish("not ready: database\n")
            return
        self.finish("ready\n")


async def database_problem(application: Application, file: Path | None) -> str | None:  # type: ignore[type-arg]
    """Why the database cannot serve an update now (one line, no data), or None; `file`: SQLite's."""
    service: ChatService | None = application.bot_data.get("service")
    if service is None:
        return "storage not open"
    engine = service.storage.engine
    # An open SQLite connection keeps answering after its file is gone (moved, deleted, its disk
    # unmounted): the file must still be there.
    if file is not None and not file.is_file():
        return "the SQLite file is gone"
    try:
        async with asyncio.timeout(READY_TIMEOUT), engine.begin() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        return type(exc).__name__
    return None


def web_app(
    application: Application,  # type: ignore[type-arg]
    path: str,
    secret: str,
    in_hand: InHand,
    database_url: str,
) -> tornado.web.Application:
    class Quiet(tornado.web.Application):
        def log_request(self, handler: tornado.web.RequestHandler) -> None:
            """No access log: python-telegram-bot's and ours say what matters, never an update's text."""

    return Quiet(
        [
            (r"/healthz", Healthz),
            (r"/readyz", Readyz, {"bot_app": application, "file": sqlite_file(database_url)}),
            (rf"{path.rstrip('/')}/?", UpdatePost, {"bot_app": application, "secret": secret, "in_hand": in_hand}),
        ]
    )


async def prune_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    from bot.storage.updates import prune_updates

    service: ChatService | None = context.bot_data.get("service")
    if service is None:
        return
    try:
        async with service.storage.session() as session, session.begin():
            await prune_updates(session)
    except Exception as error:  # the next run tries again
        log.error("pruning the handled updates failed: %s", type(error).__name__)


async def serve_webhook(
    application: Application,  # type: ignore[type-arg]
    url: str,
    secret: str,
    listen: str,
    port: int,
    database_url: str,
) -> None:
    """Run the bot on the webhook until SIGTERM/SIGINT, then stop as the module's docstring says."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    application.bot_data[ONCE] = True
    in_hand = InHand()
    server: HTTPServer | None = None
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        await application.bot.set_webhook(url, secret_token=secret, allowed_updates=Update.ALL_TYPES)
        await application.start()
        if application.job_queue is not None:
            application.job_queue.run_repeating(prune_job, interval=PRUNE_EVERY, first=60, name="prune-updates")
        server = HTTPServer(web_app(application, webhook_path(url), secret, in_hand, database_url))
        server.listen(port, address=listen)
        log.info("webhook: serving on %s:%d (updates at %s)", listen, port, webhook_path(url))
        await stop.wait()
        in_hand.closing = True
        server.stop()
        log.info("stopping: no new updates; finishing %d in hand", in_hand.count)
        await in_hand.idle()
        await server.close_all_connections()
        await application.stop()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if server is not None:
            server.stop()
        if application.running:
            await application.stop()
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
