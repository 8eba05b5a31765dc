"""Durable storage: users, patients and their records, conversation state and the audit."""

from bot.storage.repository import Storage, open_storage

__all__ = ["Storage", "open_storage"]
