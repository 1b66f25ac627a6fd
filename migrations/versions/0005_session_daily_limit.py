"""watch_sessions.daily_limit_minutes: the limit a session started with, from its event

Lets ``GET /api/sessions/:id`` answer from the projection once the session's Redis state has
expired. Rows projected before this revision keep ``NULL`` (their events lack the field);
``medio replay --projection sessions`` fills it for every event that has it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("watch_sessions", sa.Column("daily_limit_minutes", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watch_sessions") as batch:
        batch.drop_column("daily_limit_minutes")
