"""Durable storage: users, patients and their records, conversation state and the audit."""

from bot.storage.repository import Storage, open_storage
from bot.storage.session import DbConnection, DbEngine, DbSession

__all__ = ["DbConnection", "DbEngine", "DbSession", "Storage", "open_storage"]
