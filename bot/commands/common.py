"""What every `hemadose` subcommand shares: exit statuses, the settings, logging, one-line reasons.

Only the standard library at import time: `hemadose recommend` loads this and must start fast.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings import Settings

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def settings_or_none(command: str) -> Settings | None:
    """The environment's settings, or None after a one-line error (e.g. a malformed user id)."""
    from pydantic import ValidationError

    from bot.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"hemadose {command}: {str(first['msg']).removeprefix('Value error, ')}", file=sys.stderr)
        return None


def configure_logging(settings: Settings, default_level: int, token: str = "") -> None:
    """Root logging for `run` and `chat`: HEMADOSE_LOG_FORMAT and HEMADOSE_LOG_LEVEL, through the filter
    that keeps the token and message contents out of every record (bot/logs.py)."""
    from bot.logs import configure

    configure(settings.log_level or default_level, settings.log_format, [token])
    if settings.log_level != "DEBUG":
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per Bot API call (redacted): noise


def reason(exc: Exception) -> str:
    """What went wrong, in one line for the operator (database errors hide their statement parameters)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
