"""SQLAlchemy Core tables: the one place the relational schema is declared.

Alembic revisions in ``migrations/versions`` create them; this module is what the code reads
and writes through. Each section belongs to one feature.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Identity ------------------------------------------------------------------------------------

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("external_id", sa.String(255), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
