"""The replies of a handled update, kept until sent: a replica killed after its commit and before
its sends no longer loses them (another replica, or the sweep, sends them with the may-repeat note).

Rows written before this migration have no replies kept: they are dropped on a second delivery, as before.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processed_updates") as batch:
        batch.add_column(sa.Column("chat_key", sa.String(64)))
        batch.add_column(sa.Column("replies", sa.JSON))
        batch.add_column(sa.Column("owner", sa.String(64)))
        batch.add_column(sa.Column("lease_until", sa.DateTime))
    op.create_index("ix_processed_updates_lease_until", "processed_updates", ["lease_until"])


def downgrade() -> None:
    op.drop_index("ix_processed_updates_lease_until", table_name="processed_updates")
    with op.batch_alter_table("processed_updates") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("owner")
        batch.drop_column("replies")
        batch.drop_column("chat_key")
