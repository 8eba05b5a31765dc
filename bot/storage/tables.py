"""The schema (SQLAlchemy 2 declarative). Changes go through an Alembic migration beside it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import BigInteger

from core.models import Drug


class Base(DeclarativeBase):
    """The tables; a class is named `...Row` where core or flows has a model of the same thing
    (`PatientRow` is the stored patient, `core.models.Patient` a request's)."""


class User(Base):
    """Someone who uses the assistant: a Telegram user id or a terminal name, never a real name."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    time_zone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class PatientRow(Base):
    """A patient of one user, known by the label that user chose."""

    __tablename__ = "patients"
    # (user_id, label): the patient question's buttons and /patients' pages, LIMIT-ed in label order; a label
    # typed in any case is found by (user_id, lower(label)). Neither reads the user's other patients.
    __table_args__ = (UniqueConstraint("user_id", "label"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Labels in their bytes' order on every database, as SQLite orders them: PostgreSQL's default collation
    # follows the cluster's locale ('ab-1' before 'AB-1' in English), so its column is COLLATE "C" (0006).
    label: Mapped[str] = mapped_column(String(32).with_variant(String(32, collation="C"), "postgresql"))
    weight_kg: Mapped[str | None] = mapped_column(String(16))
    weight_date: Mapped[dt.date | None] = mapped_column(Date)
    age_years: Mapped[str | None] = mapped_column(String(16))
    child_pugh: Mapped[str | None] = mapped_column(String(1))
    baseline_rbc_units_per_12_weeks: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


# A label typed in any case: found by (user_id, lower(label)); the label itself in the index too, so that
# the lookup reads the index alone (SQLite prefers a covering index, and would else scan the user's labels).
Index("ix_patients_user_label_lower", PatientRow.user_id, func.lower(PatientRow.label), PatientRow.label)


class Regimen(Base):
    """The patient's current treatment: one row per patient, replaced when it changes."""

    __tablename__ = "regimens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), unique=True)
    drug: Mapped[Drug] = mapped_column(String(32))
    indication: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(8))
    dose_amount: Mapped[str | None] = mapped_column(String(16))
    dose_unit: Mapped[str] = mapped_column(String(8))
    since: Mapped[dt.date | None] = mapped_column(Date)
    on_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Dose(Base):
    """An administration (given), or one skipped or missed."""

    __tablename__ = "doses"
    # The unique key also serves the follow-up's (patient, drug, since) reads; /history's pages read by date.
    __table_args__ = (
        UniqueConstraint("patient_id", "drug", "given_on", "status"),
        Index("ix_doses_patient_given_on", "patient_id", "given_on"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    drug: Mapped[Drug] = mapped_column(String(32))
    amount: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str] = mapped_column(String(8))
    given_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8), default="given")
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime)


class LabRow(Base):
    """A lab result of a patient, as entered (value and unit kept as typed)."""

    __tablename__ = "labs"
    # The unique key skips a result already on record (INSERT ... ON CONFLICT DO NOTHING) and, by its prefix
    # (patient_id, test, date), serves a test's results since a date; the follow-up's record (every test
    # since the horizon) and /history's pages read (patient_id, date).
    __table_args__ = (
        UniqueConstraint("patient_id", "test", "date", "value", "unit"),
        Index("ix_labs_patient_date", "patient_id", "date"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    test: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str] = mapped_column(String(8))
    date: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime)


class TransfusionRow(Base):
    """A red-cell transfusion of a patient (luspatercept's rules count them)."""

    __tablename__ = "transfusions"
    __table_args__ = (UniqueConstraint("patient_id", "date", "units"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    date: Mapped[dt.date] = mapped_column(Date)
    units: Mapped[str] = mapped_column(String(8))


class ConversationRow(Base):
    """A chat's conversation state, saved after every update (flows.state.ChatState as JSON)."""

    __tablename__ = "conversations"
    chat_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Audit(Base):
    """Every recommendation given, every correction of a record, every undone save and every deleted
    patient (its tombstone): append-only, but for the erasure of a deleted patient's clinical part.

    A hash chain (bot.storage.audit_chain): entry number `seq` (1, 2, ...) carries the previous
    entry's hash and its own, SHA-256 over the previous hash, its plain fields and the digest of its
    clinical part (label, request, response, salt), so an edited, deleted or moved entry is found by
    `hemadose audit verify`, and erasing a deleted patient's clinical part (`erased_by` its tombstone)
    leaves the chain whole (docs/architecture.md, decision 11).
    """

    __tablename__ = "audit"
    __table_args__ = (
        Index("ix_audit_user_patient", "user_id", "patient_label"),
        Index("ix_audit_seq", "seq", unique=True),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    patient_label: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    ruleset: Mapped[str | None] = mapped_column(String(32))  # the drug and region: NULL once erased
    # NULL once erased (a deleted patient's entries): SQL NULL, not JSON 'null'.
    request: Mapped[dict[str, object]] = mapped_column(JSON(none_as_null=True), nullable=True)
    response: Mapped[dict[str, object]] = mapped_column(JSON(none_as_null=True), nullable=True)
    seq: Mapped[int] = mapped_column(Integer)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), server_default="recommendation")  # audit_chain.Kind
    refers_to: Mapped[int | None] = mapped_column(Integer)  # an undo: the recommendation's seq it had saved
    payload_salt: Mapped[str | None] = mapped_column(String(32))  # NULL once erased
    payload_hash: Mapped[str] = mapped_column(String(64))
    erased_by: Mapped[int | None] = mapped_column(Integer)  # the tombstone's seq that erased its clinical part


class Reminder(Base):
    """A patient's reminders from one saved recommendation: where, at what local time, and whether on."""

    __tablename__ = "reminders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    chat_key: Mapped[str] = mapped_column(String(64))  # the transport's chat to send to ('tg:<chat>:<user>')
    drug: Mapped[Drug] = mapped_column(String(32))
    dose_amount: Mapped[str | None] = mapped_column(String(16))
    dose_unit: Mapped[str | None] = mapped_column(String(8))
    dose_text: Mapped[str] = mapped_column(Text)  # "210 mcg (3 mcg/kg) = 0.42 mL"
    lab_text: Mapped[str] = mapped_column(Text)  # "platelet count"
    local_time: Mapped[str] = mapped_column(String(5))  # HH:MM in the user's time zone
    status: Mapped[str] = mapped_column(String(8), default="active")  # active | paused | stopped
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Occurrence(Base):
    """One reminder on one day: the source of truth for what is due, sent, confirmed or missed.

    `next_at` (UTC) is when the scheduler must act on it next (send, re-send, declare missed);
    NULL when nothing is left to do. Finding what is due is one range scan of its index.
    """

    __tablename__ = "occurrences"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reminder_id: Mapped[int] = mapped_column(ForeignKey("reminders.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # dose | heads_up | lab
    on_date: Mapped[dt.date] = mapped_column(Date)  # the local day
    # The day of the dose whose decided amount this row restates (a dose: its day; a heads-up: the next
    # day); NULL when the amount awaits a new result (RULES.md 6a: the reminder asks for it) and on a lab.
    dose_on: Mapped[dt.date | None] = mapped_column(Date)
    due_at: Mapped[dt.datetime] = mapped_column(DateTime)  # UTC
    deadline_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # UTC; doses only
    # bot.reminders.base.OccurrenceState: scheduled | sent | snoozed | taken | skipped | missed | unknown | done
    # | cancelled (a plain string column: the enum's values are what is stored)
    state: Mapped[str] = mapped_column(String(10), default="scheduled")
    sends: Mapped[int] = mapped_column(Integer, default=0)  # reminders sent (first + the one re-send)
    next_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    acted_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    @property
    def dose_decided(self) -> bool:
        """Whether the reminder may state the dose: False when the amount awaits a new result (RULES.md 6a)."""
        return self.dose_on is not None


class Delivery(Base):
    """One message to send, keyed so it is sent once: 'queued' when decided, 'sending' just before the
    send, 'sent' after it (bot.reminders.base.DeliveryState).

    A 'queued' or 'sending' row belongs to the replica named in `owner` until `lease_until`; only
    then may another replica take it. A 'sending' row taken so is the one window Telegram leaves
    open (it may have accepted the message before the crash): it is sent again with a note that it
    may repeat an earlier one.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_state_next_try", "state", "next_try_at"),)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # '<occurrence>:<purpose>'
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"), index=True)
    chat_key: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    buttons: Mapped[list[list[list[str]]]] = mapped_column(JSON)  # rows of [label, data]
    # queued | sending | sent | retry | failed | dropped (no longer wanted)
    state: Mapped[str] = mapped_column(String(8), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    message_id: Mapped[int | None] = mapped_column(Integer)
    owner: Mapped[str | None] = mapped_column(String(64))  # the replica that claimed it (kept after, for the record)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime)  # UTC; NULL once out of a replica's hands


class AuditHead(Base):
    """The audit chain's head: one row (id 1), the last entry's number and hash.

    A writer moves it first (UPDATE ... RETURNING), so writers of the chain queue on this row's
    lock (PostgreSQL) or on the database's write lock (SQLite) for the rest of their transaction;
    and a verifier can tell entries cut off the end of the chain.
    """

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class SaveRow(Base):
    """One "Save to patient": what it added or replaced, so that Undo can take exactly that back.

    `changes` holds the ids of the rows it inserted (results, dose, transfusions), the patient's facts
    and regimen as they were before, and whether it created the patient. Deleted with the patient.
    """

    __tablename__ = "saves"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    chat_key: Mapped[str] = mapped_column(String(64))
    recommendation_seq: Mapped[int | None] = mapped_column(Integer)  # the audit entry it saved
    changes: Mapped[dict[str, object]] = mapped_column(JSON)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    undone_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class ProcessedUpdate(Base):
    """A Telegram update already handled (webhook mode), with its replies until they were sent.

    Written in the update's own transaction; pruned after a day. A second delivery of the update is
    dropped once its replies were sent (`replies` NULL); while they are unsent, the replica that
    handled it (`owner`) holds them until `lease_until`, and after that another replica (or the
    sweep) sends them again with the may-repeat note (bot/storage/updates.py)."""

    __tablename__ = "processed_updates"
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    handled_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)  # UTC
    chat_key: Mapped[str | None] = mapped_column(String(64))  # where the replies go ('tg:<chat>:<user>')
    # The replies not yet sent, as flows made them: [{"text": ..., "buttons": [[[label, data], ...], ...]}].
    replies: Mapped[list[dict[str, object]] | None] = mapped_column(JSON(none_as_null=True))
    owner: Mapped[str | None] = mapped_column(String(64))  # the replica sending them (bot.reminders.outbox.replica_id)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)  # UTC; NULL once sent


class ReplicaRow(Base):
    """A running `hemadose run` process's heartbeat. Telegram's 30 messages a second are the bot's, not a
    process's: each replica counts the live rows and paces itself at its share (bot/sending.py)."""

    __tablename__ = "replicas"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # bot.reminders.outbox.replica_id()
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime)  # UTC, of its last heartbeat
