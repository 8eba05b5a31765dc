"""Records that can be corrected: the audit's clinical part beside its chain (so a deleted patient's can
be erased), entry kinds, and the saves that Undo takes back.

The audit is re-chained in the format of bot/storage/audit_chain.py (decision 11): the chain first
checked in 0003's format, and refused if broken (re-chaining a broken chain would hide the break); then
each entry gets a random salt, the digest of its clinical part, and its new hash, in the order written.
The head hash changes: a head kept from before this migration is checked against a pre-migration
backup, not against the new chain.

Revision ID: 0010
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.audit_chain import GENESIS, HEAD_ID, entry_hash, legacy_entry_hash, new_salt, payload_digest

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_AUDIT = sa.table(
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
    sa.column("kind", sa.String),
    sa.column("payload_salt", sa.String),
    sa.column("payload_hash", sa.String),
)
_HEAD = sa.table("audit_head", sa.column("id", sa.Integer), sa.column("seq", sa.Integer), sa.column("hash", sa.String))


def _rows(connection: sa.Connection) -> list[sa.Row[tuple[object, ...]]]:
    return list(connection.execute(sa.select(_AUDIT).order_by(_AUDIT.c.id)).all())


def upgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="recommendation"))
        batch.add_column(sa.Column("refers_to", sa.Integer))
        batch.add_column(sa.Column("payload_salt", sa.String(32)))
        batch.add_column(sa.Column("payload_hash", sa.String(64)))
        batch.add_column(sa.Column("erased_by", sa.Integer))
        batch.alter_column("ruleset", existing_type=sa.String(32), nullable=True)
        batch.alter_column("request", existing_type=sa.JSON, nullable=True)
        batch.alter_column("response", existing_type=sa.JSON, nullable=True)
    connection = op.get_bind()
    rows = _rows(connection)
    previous = GENESIS
    for row in rows:  # 0003's chain, checked before it is replaced
        digest = legacy_entry_hash(
            previous, row.seq, row.user_id, row.patient_label, row.at, row.ruleset, row.request, row.response
        )
        if row.prev_hash != previous or row.hash != digest:
            raise RuntimeError(
                f"audit entry id {row.id} (#{row.seq}) does not verify: the audit is not re-chained over a broken "
                "chain (migration 0010). Restore the audit from a backup, then start again."
            )
        previous = digest
    previous = GENESIS
    for row in rows:
        salt = new_salt()
        payload = payload_digest(salt, row.patient_label, row.ruleset, row.request, row.response)
        digest = entry_hash(previous, row.seq, row.user_id, "recommendation", row.at, None, payload)
        values = {"prev_hash": previous, "hash": digest, "payload_salt": salt, "payload_hash": payload}
        connection.execute(sa.update(_AUDIT).where(_AUDIT.c.id == row.id).values(values))
        previous = digest
    connection.execute(sa.update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(hash=previous))
    with op.batch_alter_table("audit") as batch:
        batch.alter_column("payload_hash", existing_type=sa.String(64), nullable=False)
    op.create_table(
        "saves",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id", ondelete="CASCADE"), nullable=False),
        sa.Column("chat_key", sa.String(64), nullable=False),
        sa.Column("recommendation_seq", sa.Integer),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("undone_at", sa.DateTime),
    )
    op.create_index("ix_saves_user_id", "saves", ["user_id"])
    op.create_index("ix_saves_patient_id", "saves", ["patient_id"])


def downgrade() -> None:
    op.drop_index("ix_saves_patient_id", table_name="saves")
    op.drop_index("ix_saves_user_id", table_name="saves")
    op.drop_table("saves")
    connection = op.get_bind()
    if connection.execute(
        sa.select(sa.func.count()).select_from(_AUDIT).where(_AUDIT.c.kind != "recommendation")
    ).scalar():
        raise RuntimeError("the audit holds corrections or tombstones, which 0003's format cannot hold")
    previous = GENESIS
    for row in _rows(connection):  # back to 0003's format
        digest = legacy_entry_hash(
            previous, row.seq, row.user_id, row.patient_label, row.at, row.ruleset, row.request, row.response
        )
        connection.execute(sa.update(_AUDIT).where(_AUDIT.c.id == row.id).values(prev_hash=previous, hash=digest))
        previous = digest
    connection.execute(sa.update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(hash=previous))
    with op.batch_alter_table("audit") as batch:
        for column in ("erased_by", "payload_hash", "payload_salt", "refers_to", "kind"):
            batch.drop_column(column)
