"""Reminders: schedules, their occurrences, and the delivery of each message.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column(
            "patient_id", sa.Integer, sa.ForeignKey("patients.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("chat_key", sa.String(64), nullable=False),
        sa.Column("drug", sa.String(32), nullable=False),
        sa.Column("dose_amount", sa.String(16)),
        sa.Column("dose_unit", sa.String(8)),
        sa.Column("dose_text", sa.Text, nullable=False),
        sa.Column("lab_text", sa.Text, nullable=False),
        sa.Column("local_time", sa.String(5), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "occurrences",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "reminder_id", sa.Integer, sa.ForeignKey("reminders.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("on_date", sa.Date, nullable=False),
        sa.Column("dose_on", sa.Date),
        sa.Column("due_at", sa.DateTime, nullable=False),
        sa.Column("deadline_at", sa.DateTime),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("sends", sa.Integer, nullable=False),
        sa.Column("next_at", sa.DateTime, index=True),
        sa.Column("acted_at", sa.DateTime),
    )
    op.create_table(
        "deliveries",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column(
            "occurrence_id",
            sa.Integer,
            sa.ForeignKey("occurrences.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("chat_key", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("buttons", sa.JSON, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_try_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("sent_at", sa.DateTime),
        sa.Column("message_id", sa.Integer),
    )
    op.create_index("ix_deliveries_state_next_try", "deliveries", ["state", "next_try_at"])


def downgrade() -> None:
    for table in ("deliveries", "occurrences", "reminders"):
        op.drop_table(table)
