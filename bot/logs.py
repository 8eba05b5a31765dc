"""Logging for `hemadose run` and `hemadose chat`: no token and no patient data at any level.

At DEBUG, python-telegram-bot logs the Bot API URL (`https://api.telegram.org/bot<token>`) and every
call's parameters and return value (message texts: patient labels, counts, doses, and the updates users
sent); httpx logs each request's URL, token included. `Redact`, installed on the root handlers, rewrites
every record before any handler formats it: the token and anything shaped like one become `<token>`, the
parameters and return values become `<redacted>`. `HEMADOSE_LOG_FORMAT=json` writes one JSON object per
line (time, level, logger, message).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "<redacted>"
# A bot token in a URL (`/bot123:ABC.../`) or alone: digits, a colon, then its secret.
BOT_URL = re.compile(r"bot\d+:[A-Za-z0-9_-]+")
TOKEN_LIKE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}")
# python-telegram-bot's "Calling Bot API endpoint `sendMessage` with parameters `{...}`" and
# "... finished with return value `{...}`": the part in backticks holds texts, chats and updates.
PAYLOAD = re.compile(r"(with parameters|with return value|with data|with args)\s*`.*`", re.DOTALL)
# Loggers that may carry what users typed or what the bot answered; only the shape of their records is kept.
THIRD_PARTY = ("telegram", "httpx", "httpcore", "apscheduler", "hpack", "h2")
# What a message dict or object shows of a text, in those loggers' records when no backticks frame it.
TEXT_FIELD = re.compile(
    r"""(['"]?(?:text|caption|query|data|callback_data|first_name|last_name|username)['"]?\s*[:=]\s*)"""
    r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""",
    re.DOTALL,
)


class Redact(logging.Filter):
    """Removes the token (given, and any token-shaped string) and message contents from every record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def clean(self, text: str, third_party: bool = True) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<token>")
        text = BOT_URL.sub("bot<token>", text)
        text = TOKEN_LIKE.sub("<token>", text)
        if third_party:
            text = PAYLOAD.sub(lambda m: f"{m.group(1)} `{REDACTED}`", text)
            text = TEXT_FIELD.sub(lambda m: f"{m.group(1)}{REDACTED!r}", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        third_party = record.name.split(".")[0] in THIRD_PARTY
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: keep only the format
            message = str(record.msg)
        record.msg, record.args = self.clean(message, third_party), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.clean(record.exc_text, third_party)
        if record.stack_info:
            record.stack_info = self.clean(record.stack_info, third_party)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message (and exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure(
    level: int | str = logging.INFO,
    log_format: LogFormat = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """One handler on the root logger (replacing any), with the redacting filter; returns the handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(Redact(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def protect(secrets: Iterable[str] = ()) -> None:
    """Install the redacting filter on every root handler that lacks it (e.g. one added after `configure`)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, Redact) for f in handler.filters):
            handler.addFilter(Redact(secrets))
