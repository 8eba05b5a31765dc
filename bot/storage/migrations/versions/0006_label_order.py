"""Patients' labels in one order on every database: PostgreSQL's column COLLATE "C" (bytes' order).

SQLite compares text by its bytes (BINARY); PostgreSQL by the database's collation, which follows the
cluster's locale: with an English one, /patients, its pages and the patient question's buttons came
in another order ('ab-1', 'AB-1', 'bed 4' instead of 'AB-1', 'RX-12', 'ab-1'). Nothing changes on SQLite.

Revision ID: 0006
Revises: 0005_scale
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005_scale"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("patients", "label", type_=sa.String(32, collation="C"), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("patients", "label", type_=sa.String(32), existing_nullable=False)
