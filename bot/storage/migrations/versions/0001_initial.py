"""Initial schema: users, patients, regimens, doses, labs, transfusions, conversations, audit.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("external_id", sa.String(64), nullable=False, unique=True),
        sa.Column("time_zone", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("weight_kg", sa.String(16)),
        sa.Column("weight_date", sa.Date),
        sa.Column("age_years", sa.String(16)),
        sa.Column("child_pugh", sa.String(1)),
        sa.Column("baseline_rbc_units_per_12_weeks", sa.String(16)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("user_id", "label"),
    )
    op.create_table(
        "regimens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "patient_id", sa.Integer, sa.ForeignKey("patients.id", ondelete="CASCADE"), nullable=False, unique=True
        ),
        sa.Column("drug", sa.String(32), nullable=False),
        sa.Column("indication", sa.String(32), nullable=False),
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("dose_amount", sa.String(16)),
        sa.Column("dose_unit", sa.String(8), nullable=False),
        sa.Column("since", sa.Date),
        sa.Column("on_hold", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "doses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "patient_id", sa.Integer, sa.ForeignKey("patients.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("drug", sa.String(32), nullable=False),
        sa.Column("amount", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(8), nullable=False),
        sa.Column("given_on", sa.Date, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("patient_id", "drug", "given_on", "status"),
    )
    op.create_table(
        "labs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "patient_id", sa.Integer, sa.ForeignKey("patients.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("test", sa.String(16), nullable=False),
        sa.Column("value", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(8), nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("patient_id", "test", "date", "value", "unit"),
    )
    op.create_table(
        "transfusions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "patient_id", sa.Integer, sa.ForeignKey("patients.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("units", sa.String(8), nullable=False),
        sa.UniqueConstraint("patient_id", "date", "units"),
    )
    op.create_table(
        "conversations",
        sa.Column("chat_key", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("patient_label", sa.String(32)),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("ruleset", sa.String(32), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_user_patient", "audit", ["user_id", "patient_label"])


def downgrade() -> None:
    for table in ("audit", "conversations", "transfusions", "labs", "doses", "regimens", "patients", "users"):
        op.drop_table(table)
