"""Reminders: durable schedules, the due-occurrence loop, and delivering each message once.

The database is the source of truth. Every reminder day is an `Occurrence` row whose `next_at`
(UTC) says when the scheduler must act on it next: send it, send it again once, or declare the
dose missed. `run_due` finds what is due with one range scan of that index, so neither its time
nor the process's memory grows with the number of occurrences scheduled.

A dose is *missed* only when its reminder reached the user and the deadline passed without Taken;
when no reminder of it was delivered before the deadline (the bot was down, the send failed) it is
*unknown* (RULES.md 6 "unconfirmed"): the user is asked whether it was taken, and the missed-dose
guidance follows only a No. A user who blocked the bot has their reminders paused ('blocked' until
they are told, on their next message, then 'paused').

Each message is a `Delivery` row with a key of its own ('<occurrence>:<purpose>'), written as
'queued' in the same transaction as the occurrence's new state, marked 'sending' just before the
send and 'sent' only after Telegram accepted it (bot.reminders.outbox: concurrently, one queue per
chat, the writes grouped; each row held by one replica under a lease). Telegram has no idempotent
send, so one window cannot be closed: a crash after Telegram accepted a message and before 'sent'
was written. Once the crashed replica's lease expired, such a row is sent again with a note that it
may repeat an earlier one. A failed send is retried later
(`retry`), or given up only on an answer that will never change (the user blocked the bot).
Local times come from the user's time zone through `zoneinfo`; every stored instant is UTC.
"""

from __future__ import annotations

from bot.reminders.answers import Answers
from bot.reminders.base import (
    ACTIVE_STATES,
    ANSWERED_STATES,
    GIVE_UP_AFTER,
    LATE_AFTER,
    REMINDER_PURPOSES,
    RESEND_AFTER,
    RETRY_AFTER,
    SNOOZE,
    Buttons,
    Clock,
    DeliveryError,
    OccurrenceState,
    Sender,
    local,
    utc_at,
)
from bot.reminders.manage import Manage
from bot.reminders.outbox import _SENT, _SET_STATE, Outbox, stored_buttons
from bot.reminders.schedule import Schedule

__all__ = [
    "ACTIVE_STATES",
    "ANSWERED_STATES",
    "GIVE_UP_AFTER",
    "LATE_AFTER",
    "REMINDER_PURPOSES",
    "RESEND_AFTER",
    "RETRY_AFTER",
    "SNOOZE",
    "_SENT",
    "_SET_STATE",
    "Answers",
    "Buttons",
    "Clock",
    "DeliveryError",
    "Manage",
    "OccurrenceState",
    "Outbox",
    "Reminders",
    "Schedule",
    "Sender",
    "local",
    "stored_buttons",
    "utc_at",
]


class Reminders(Outbox, Answers, Manage):
    """Schedules, acknowledgements and the delivery loop, over the shared storage."""
