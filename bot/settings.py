"""Settings from the environment (pydantic-settings). The bot token is read from here only."""

from __future__ import annotations

import enum
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hemadose"


def as_database_url(value: str) -> str:
    """A database URL as given, or a plain file path (no "://") read as the SQLite file it names."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for other databases and for in-memory SQLite."""
    if not url.startswith("sqlite"):
        return None
    _, sep, path = url.partition("///")
    path = path.split("?", 1)[0]
    if not sep or path in ("", ":memory:"):
        return None
    return Path(path).expanduser()


def missing_folder(url: str) -> Path | None:
    """The folder a SQLite database file would go in, when it does not exist (None otherwise).

    A database the user names (--db, HEMADOSE_DB_URL) is never given a folder of its own making:
    a typo would otherwise put the patients' records somewhere nobody looks.
    """
    path = sqlite_file(url)
    if path is None or path.parent.is_dir():
        return None
    return path.parent


# The variables `hemadose run` reads, with their meaning (its --help lists them; a test keeps this
# list and the Settings fields in step).
ENVIRONMENT = {
    "TELEGRAM_BOT_TOKEN": "the bot's token from @BotFather (required; never logged)",
    "HEMADOSE_ALLOWED_USERS": "comma-separated Telegram user ids to serve, or * for everyone (required)",
    "HEMADOSE_DB_URL": "SQLAlchemy database URL or a plain SQLite file path; its folder must exist "
    "(default: hemadose.db in the data directory)",
    "HEMADOSE_DATA_DIR": "data directory, created private if missing (default: $XDG_DATA_HOME/hemadose, "
    "i.e. ~/.local/share/hemadose)",
    "HEMADOSE_TIMEZONE": "default time zone for 'today' and reminders, an Area/City name (default: UTC)",
    "HEMADOSE_LOG_FORMAT": "text (default) or json: one JSON object per line (time, level, logger, message)",
    "HEMADOSE_LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR (default: INFO for run, WARNING for chat); "
    "no level logs the token or what users typed",
    "HEMADOSE_TELEGRAM_BASE_URL": "the Bot API server's address (default: https://api.telegram.org); "
    "a local Bot API server, or the tests' loopback one",
    "HEMADOSE_WEBHOOK_SECRET": "with --webhook (required there): the secret Telegram sends with every update, "
    "1-256 of A-Z a-z 0-9 _ -; a post without it is refused (403)",
    "HEMADOSE_WEBHOOK_LISTEN": "with --webhook: the address the webhook server listens on (default: 127.0.0.1, "
    "behind a reverse proxy that terminates HTTPS)",
    "HEMADOSE_WEBHOOK_PORT": "with --webhook: its port (default: 8080); it also serves /healthz and /readyz",
    "HEMADOSE_TELEGRAM_PER_SECOND": "messages a second the bot may send, shared by all its replicas (default: 30, "
    "Telegram's limit; 0: no limit, for a test Bot API)",
}
TELEGRAM_BASE_URL = "https://api.telegram.org"
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what Telegram accepts as a webhook's secret_token
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class NoPolicy(enum.Enum):
    """HEMADOSE_ALLOWED_USERS is empty: no access policy, and `hemadose run` refuses to start.

    A one-member enum rather than a string, so that the type says which of "nobody decided" and
    "everyone" (None) a caller holds."""

    UNSET = "unset"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    telegram_bot_token: SecretStr | None = Field(default=None, alias="TELEGRAM_BOT_TOKEN")
    data_dir: Path = Field(default_factory=default_data_dir, alias="HEMADOSE_DATA_DIR")
    db_url: str | None = Field(default=None, alias="HEMADOSE_DB_URL")
    # Comma-separated Telegram user ids; `*` serves everyone (an explicit choice, logged at start).
    allowed_users: str = Field(default="", alias="HEMADOSE_ALLOWED_USERS")
    time_zone: str = Field(default="UTC", alias="HEMADOSE_TIMEZONE")
    log_format: Literal["text", "json"] = Field(default="text", alias="HEMADOSE_LOG_FORMAT")
    log_level: str | None = Field(default=None, alias="HEMADOSE_LOG_LEVEL")
    telegram_base_url: str = Field(default=TELEGRAM_BASE_URL, alias="HEMADOSE_TELEGRAM_BASE_URL")
    webhook_secret: SecretStr | None = Field(default=None, alias="HEMADOSE_WEBHOOK_SECRET")
    webhook_listen: str = Field(default="127.0.0.1", alias="HEMADOSE_WEBHOOK_LISTEN")
    webhook_port: int = Field(default=8080, ge=1, le=65535, alias="HEMADOSE_WEBHOOK_PORT")
    telegram_per_second: int = Field(default=30, ge=0, le=1000, alias="HEMADOSE_TELEGRAM_PER_SECOND")

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if WEBHOOK_SECRET.fullmatch(value.get_secret_value().strip()) is None:
            raise ValueError(
                "HEMADOSE_WEBHOOK_SECRET: use 1 to 256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)"
            )
        return SecretStr(value.get_secret_value().strip())

    @field_validator("webhook_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return value.strip() or "127.0.0.1"

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("text", "json"):
            return value.strip().lower()
        raise ValueError(f"HEMADOSE_LOG_FORMAT: '{value}' is not a log format; use text or json")

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if value.strip().upper() not in LOG_LEVELS:
            raise ValueError(f"HEMADOSE_LOG_LEVEL: '{value}' is not a log level; use {', '.join(LOG_LEVELS)}")
        return value.strip().upper()

    @field_validator("telegram_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/") or TELEGRAM_BASE_URL
        if not value.startswith(("https://", "http://")):
            raise ValueError(
                f"HEMADOSE_TELEGRAM_BASE_URL: '{value}' is not an http(s) address; e.g. {TELEGRAM_BASE_URL}"
            )
        return value

    @field_validator("allowed_users")
    @classmethod
    def _ids(cls, value: str) -> str:
        for part in value.replace(" ", "").split(","):
            if part and part != "*" and not part.isdigit():
                raise ValueError(f"HEMADOSE_ALLOWED_USERS: '{part}' is not a Telegram user id (digits) or *")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"HEMADOSE_TIMEZONE: '{value}' is not a time zone I know; use an Area/City name, e.g. Europe/London"
            ) from None
        return value

    @property
    def database_url(self) -> str:
        return (
            as_database_url(self.db_url) if self.db_url else f"sqlite:///{self.data_dir.expanduser() / 'hemadose.db'}"
        )

    def database(self, override: str | None = None) -> tuple[str, str | None]:
        """The database URL to open (`override`: chat's --db), and why it cannot be used, or None.

        The data directory (the default place) is created, readable by its owner only; the folder
        of a database named by --db or HEMADOSE_DB_URL must already exist.
        """
        if override is not None or self.db_url:
            given = override if override is not None else self.db_url
            assert given is not None
            url = as_database_url(given)
            folder = missing_folder(url)
            source = "--db" if override is not None else "HEMADOSE_DB_URL"
            if folder is not None:
                state = "is not a folder" if folder.exists() else "does not exist"
                return url, f"{source}: {folder} {state}; create the folder first or choose another path"
            return url, None
        try:
            self.data_dir.expanduser().mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            return self.database_url, f"cannot create the data directory {self.data_dir}: {exc.strerror}"
        return self.database_url, None

    def access_policy(self) -> frozenset[int] | Literal[NoPolicy.UNSET] | None:
        """The allowed ids; None for everyone ('*'); `NoPolicy.UNSET` when there is no policy."""
        parts = [p for p in self.allowed_users.replace(" ", "").split(",") if p]
        if not parts:
            return NoPolicy.UNSET
        if "*" in parts:
            return None
        return frozenset(int(p) for p in parts)
