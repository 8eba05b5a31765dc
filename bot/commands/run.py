"""`hemadose run`: the Telegram bot with long polling or a webhook (bot/webhook.py), its settings checked
before it goes online."""

from __future__ import annotations

import logging
import re
import sys

from bot.commands.common import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE, configure_logging, reason, settings_or_none
from bot.settings import NoPolicy

RETRIES_AFTER_429 = 3
PREFLIGHT_TIMEOUT = 15.0  # seconds for the pre-flight to connect to the database and migrate it


def run_bot(webhook: str | None = None) -> int:
    """Long polling, or with `webhook` (a public URL) the webhook server of bot/webhook.py."""
    from telegram.error import InvalidToken, NetworkError, TelegramError

    from bot.logs import protect
    from bot.sending import BotPace, BotRateLimiter
    from bot.telegram_app import StartupError, build_application, serve

    settings = settings_or_none("run")
    if settings is None:
        return EXIT_INVALID
    token = settings.telegram_bot_token.get_secret_value().strip() if settings.telegram_bot_token else ""
    configure_logging(settings, logging.INFO, token)
    if not token:
        print("hemadose run: set TELEGRAM_BOT_TOKEN (from @BotFather) in the environment.", file=sys.stderr)
        return EXIT_INVALID
    if re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token) is None:
        print(
            "hemadose run: TELEGRAM_BOT_TOKEN does not look like a bot token (digits, a colon, then letters, "
            "e.g. 123456:ABC-DEF...); copy it again from @BotFather.",
            file=sys.stderr,
        )
        return EXIT_INVALID
    policy = settings.access_policy()
    if policy is NoPolicy.UNSET:
        print(
            "hemadose run: refusing to start without an access policy: set HEMADOSE_ALLOWED_USERS to the "
            "Telegram user ids to serve (comma-separated), or * to serve everyone.",
            file=sys.stderr,
        )
        return EXIT_INVALID
    url, problem = settings.database()
    if problem is None and (unusable := _database_problem(url) or _database_unready(url)) is not None:
        problem = f"HEMADOSE_DB_URL: {unusable}"
    if problem is not None:
        print(f"hemadose run: {problem}", file=sys.stderr)
        return EXIT_INVALID
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    if webhook is not None:
        from bot.webhook import url_problem

        problem = url_problem(webhook)
        if problem is None and not secret:
            problem = (
                "--webhook needs HEMADOSE_WEBHOOK_SECRET (1-256 of A-Z a-z 0-9 _ -), the secret Telegram sends "
                "with every update, so that nobody else can post updates to the bot."
            )
        if problem is not None:
            print(f"hemadose run: {problem}", file=sys.stderr)
            return EXIT_INVALID
    if policy is None:
        logging.warning("HEMADOSE_ALLOWED_USERS=*: serving every Telegram user")

    # A 429 asks to wait: python-telegram-bot's AIORateLimiter waits as asked and sends again (a 429
    # means Telegram took nothing, so the reply arrives once); it also keeps to this replica's share of
    # the bot's 30 messages/s (BotPace, scaled by the replicas' heartbeats).
    per_second = settings.telegram_per_second
    limiter = BotRateLimiter(BotPace(per_second) if per_second else None, max_retries=RETRIES_AFTER_429)
    app = build_application(
        token, None, policy, polling=webhook is None, base_url=settings.telegram_base_url, rate_limiter=limiter
    )
    serve(app, url, settings.time_zone)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_failed_start)
    protect([token])
    if secret:  # the webhook's secret is kept out of the log as the token is
        from bot.logs import Redact

        for handler in logging.getLogger().handlers:
            handler.addFilter(Redact([secret]))
    try:
        if webhook is not None:
            import asyncio

            from bot.webhook import serve_webhook

            listen, port = settings.webhook_listen, settings.webhook_port
            asyncio.run(serve_webhook(app, webhook, secret, listen, port, url))
        else:
            app.run_polling()
    except InvalidToken:
        print("hemadose run: Telegram refused the token; check TELEGRAM_BOT_TOKEN (from @BotFather).", file=sys.stderr)
        return EXIT_INVALID
    except NetworkError as exc:  # time-outs included
        print(f"hemadose run: cannot reach Telegram: {_hide(exc, token)}; check the network/token.", file=sys.stderr)
        return EXIT_UNREADABLE
    except TelegramError as exc:
        print(f"hemadose run: Telegram refused to start the bot: {_hide(exc, token)}.", file=sys.stderr)
        return EXIT_UNREADABLE
    except StartupError as exc:
        print(f"hemadose run: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except OSError as exc:  # the webhook's port taken, or an address this host does not have
        if webhook is None:
            raise
        where = f"{settings.webhook_listen}:{settings.webhook_port}"
        print(f"hemadose run: cannot listen on {where}: {exc.strerror or exc}.", file=sys.stderr)
        return EXIT_UNREADABLE
    return EXIT_OK


def _quiet_failed_start(record: logging.LogRecord) -> bool:
    """Drop python-telegram-bot's traceback of a failed start-up: `run` reports it in one line."""
    return not (record.name == "telegram.ext" and "Bootstrap Initialize Application" in record.getMessage())


def _hide(exc: Exception, token: str) -> str:
    """The error in one line, never with the token (a URL in an error message can carry it)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].replace(token, "<token>")


def _database_problem(url: str) -> str | None:
    """Why the bot could not use this database URL (checked before going online), or None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url).get_dialect()
    except (ArgumentError, ValueError) as exc:
        return f"not a database URL I can use ({reason(exc)}); e.g. sqlite:///path/hemadose.db"
    return None


def _database_unready(url: str) -> str | None:
    """Connect and bring the schema to head (migrating if needed) before going online: a missing driver,
    an unreachable server or a schema this version cannot migrate is one line here, not a traceback after
    the bot is online. None when the database is ready."""
    import asyncio

    from sqlalchemy.engine import make_url

    from bot.storage import open_storage

    async def check() -> None:
        storage = await asyncio.wait_for(open_storage(url), PREFLIGHT_TIMEOUT)
        await storage.close()

    where = make_url(url).render_as_string(hide_password=True)
    alembic = logging.getLogger("alembic")
    level = alembic.level
    alembic.setLevel(logging.WARNING)  # a failed start stays one line
    try:
        asyncio.run(check())
    except ModuleNotFoundError as exc:  # SQLAlchemy imports the driver when the engine is made
        hint = " (pip install 'hemadose[postgres]')" if exc.name == "asyncpg" else ""
        return f"the database driver {exc.name!r} is not installed{hint}"
    except TimeoutError:
        return f"the database at {where} did not answer within {PREFLIGHT_TIMEOUT:g} s"
    except Exception as exc:  # refused, unknown host, authentication, a schema newer than this version
        return f"cannot open the database at {where}: {reason(exc)}"
    finally:
        alembic.setLevel(level)
    return None
