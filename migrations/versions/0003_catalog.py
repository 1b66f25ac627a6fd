"""catalog: child profiles and videos

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "profiles",
        sa.Column("id", BIGINT_PK, primary_key=True),
        sa.Column(
            "user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("age", sa.SmallInteger, nullable=False),
        sa.Column("avatar_url", sa.String(2048), nullable=True),
        sa.Column("daily_limit_minutes", sa.Integer, nullable=False, server_default="60"),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("kids_mode", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_profiles_user_id_id", "profiles", ["user_id", "id"])
    op.create_table(
        "videos",
        sa.Column("id", BIGINT_PK, primary_key=True),
        sa.Column(
            "user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("thumbnail_url", sa.String(2048), nullable=True),
        sa.Column("duration", sa.Integer, nullable=True),
        sa.Column("file_path", sa.String(512), nullable=True),
        sa.Column("thumbnail_path", sa.String(512), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("mime_type", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_videos_user_id_created_at", "videos", ["user_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_table("videos")
    op.drop_table("profiles")
