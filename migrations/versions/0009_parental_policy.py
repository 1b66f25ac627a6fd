"""parental policy: profile policy fields, video min_age, the day ledger (CONTRACT §13)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("profiles") as batch:
        batch.add_column(sa.Column("weekday_limits", sa.JSON, nullable=True))
        batch.add_column(sa.Column("bedtime", sa.JSON, nullable=True))
        batch.add_column(
            sa.Column("warning_minutes", sa.SmallInteger, nullable=False, server_default="5")
        )
        batch.add_column(
            sa.Column("limit_action", sa.String(16), nullable=False, server_default="stop")
        )
    with op.batch_alter_table("videos") as batch:
        batch.add_column(sa.Column("min_age", sa.SmallInteger, nullable=False, server_default="0"))
    op.create_table(
        "day_ledger",
        sa.Column("profile_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("local_date", sa.Date, primary_key=True),
        sa.Column("shard", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("entry_ms", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("entry_seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("day_ledger")
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("min_age")
    with op.batch_alter_table("profiles") as batch:
        batch.drop_column("limit_action")
        batch.drop_column("warning_minutes")
        batch.drop_column("bedtime")
        batch.drop_column("weekday_limits")
