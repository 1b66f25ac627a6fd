"""sessions and stats: the watch-sessions table and the parents' stats tables (projections)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "watch_sessions",
        sa.Column("session_id", BIGINT_PK, primary_key=True, autoincrement=False),
        sa.Column("profile_id", sa.BigInteger, nullable=False),
        sa.Column("video_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("public", sa.Boolean, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("local_date", sa.Date, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(16), nullable=True),
        sa.Column("watched_ms", sa.BigInteger, nullable=False),
        sa.Column("position", sa.Float, nullable=True),
    )
    op.create_index(
        "ix_watch_sessions_profile_started", "watch_sessions", ["profile_id", "started_at"]
    )
    op.create_table(
        "stats_daily",
        sa.Column("profile_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("local_date", sa.Date, primary_key=True),
        sa.Column("watched_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "stats_videos",
        sa.Column("profile_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("video_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("watch_count", sa.Integer, nullable=False),
        sa.Column("watched_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "stats_totals",
        sa.Column("profile_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("watched_ms", sa.BigInteger, nullable=False),
        sa.Column("sessions", sa.Integer, nullable=False),
        sa.Column("watched_sessions", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stats_totals")
    op.drop_table("stats_videos")
    op.drop_table("stats_daily")
    op.drop_index("ix_watch_sessions_profile_started", table_name="watch_sessions")
    op.drop_table("watch_sessions")
