"""Indexes that keep an update's cost independent of the record's size (issue 12).

- patients (user_id, lower(label)): a label typed in any case found by index, not by reading every label;
- labs (patient_id, date): the follow-up's record since its horizon and /history's pages, by date;
- doses (patient_id, given_on): /history's pages, by date.

The labs' unique key (patient_id, test, date, value, unit) was there from 0001: saving skips a result
already on record with INSERT ... ON CONFLICT DO NOTHING on it.

Revision ID: 0005_scale
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_scale"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_patients_user_label_lower", "patients", ["user_id", sa.text("lower(label)"), "label"])
    op.create_index("ix_labs_patient_date", "labs", ["patient_id", "date"])
    op.create_index("ix_doses_patient_given_on", "doses", ["patient_id", "given_on"])


def downgrade() -> None:
    op.drop_index("ix_doses_patient_given_on", "doses")
    op.drop_index("ix_labs_patient_date", "labs")
    op.drop_index("ix_patients_user_label_lower", "patients")
