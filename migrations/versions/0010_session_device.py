"""watch_sessions.device_id: the paired device that started a session, from its event

Lets the day's ledger name the device that watched. Rows projected before this revision keep
``NULL``; ``medio replay --projection sessions`` fills it for every event that has it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("watch_sessions", sa.Column("device_id", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watch_sessions") as batch:
        batch.drop_column("device_id")
