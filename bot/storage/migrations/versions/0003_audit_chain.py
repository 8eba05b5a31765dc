"""The audit as a hash chain: entry numbers, each entry's previous hash and its own, the chain head.

Entries written before this migration are chained by it, in the order written (by id), so the
chain starts at the first entry ever written: a later change to any of them is found too. (What
they held before the migration is taken as it stood; nothing can vouch for that.)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.audit_chain import GENESIS, HEAD_ID, legacy_entry_hash

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("seq", sa.Integer))
        batch.add_column(sa.Column("prev_hash", sa.String(64)))
        batch.add_column(sa.Column("hash", sa.String(64)))
    audit = sa.table(
        "audit",
        sa.column("id", sa.Integer),
        sa.column("user_id", sa.Integer),
        sa.column("patient_label", sa.String),
        sa.column("at", sa.DateTime),
        sa.column("ruleset", sa.String),
        sa.column("request", sa.JSON),
        sa.column("response", sa.JSON),
        sa.column("seq", sa.Integer),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(audit).order_by(audit.c.id)).all()
    previous, seq = GENESIS, 0
    for row in rows:
        seq += 1
        digest = legacy_entry_hash(
            previous, seq, row.user_id, row.patient_label, row.at, row.ruleset, row.request, row.response
        )
        connection.execute(
            sa.update(audit).where(audit.c.id == row.id).values(seq=seq, prev_hash=previous, hash=digest)
        )
        previous = digest
    connection.execute(sa.insert(head).values(id=HEAD_ID, seq=seq, hash=previous))
    with op.batch_alter_table("audit") as batch:
        batch.alter_column("seq", existing_type=sa.Integer, nullable=False)
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)
        batch.create_index("ix_audit_seq", ["seq"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.drop_index("ix_audit_seq")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
        batch.drop_column("seq")
    op.drop_table("audit_head")
