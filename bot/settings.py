"""Settings from the environment (pydantic-settings). The bot token is read from here only."""

from __future__ import annotations

import os
from pathlib import Path

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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    telegram_bot_token: SecretStr | None = Field(default=None, alias="TELEGRAM_BOT_TOKEN")
    data_dir: Path = Field(default_factory=default_data_dir, alias="HEMADOSE_DATA_DIR")
    db_url: str | None = Field(default=None, alias="HEMADOSE_DB_URL")
    # Comma-separated Telegram user ids; `*` serves everyone (an explicit choice, logged at start).
    allowed_users: str = Field(default="", alias="HEMADOSE_ALLOWED_USERS")
    time_zone: str = Field(default="UTC", alias="HEMADOSE_TIMEZONE")

    @field_validator("allowed_users")
    @classmethod
    def _ids(cls, value: str) -> str:
        for part in value.replace(" ", "").split(","):
            if part and part != "*" and not part.isdigit():
                raise ValueError(f"HEMADOSE_ALLOWED_USERS: '{part}' is not a Telegram user id (digits) or *")
        return value

    @property
    def database_url(self) -> str:
        return as_database_url(self.db_url) if self.db_url else f"sqlite:///{self.data_dir / 'hemadose.db'}"

    def access_policy(self) -> frozenset[int] | str | None:
        """The allowed ids; None for everyone ('*'); the string 'unset' when there is no policy."""
        parts = [p for p in self.allowed_users.replace(" ", "").split(",") if p]
        if not parts:
            return "unset"
        if "*" in parts:
            return None
        return frozenset(int(p) for p in parts)
