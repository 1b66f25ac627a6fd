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

# Event archive and projection checkpoints --------------------------------------------------

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer, "sqlite")

events = sa.Table(
    "events",
    metadata,
    # Archive order: assigned in commit order, so a reader following positions misses nothing.
    sa.Column("position", BIGINT_PK, primary_key=True, autoincrement=False),
    sa.Column("shard", sa.SmallInteger, nullable=False),
    sa.Column("stream_id", sa.String(32), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("version", sa.SmallInteger, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # the event's JSON body exactly as appended
    # Set: ``data`` is that body sealed with this privacy key (``adapters.keyring``); a row
    # whose key is gone, or whose ``data`` is empty, is erased.
    sa.Column("key_id", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("shard", "stream_id", name="uq_events_shard_stream_id"),
    sa.Index("ix_events_type_position", "type", "position"),
    sa.Index("ix_events_occurred_at", "occurred_at"),
)

projection_checkpoints = sa.Table(
    "projection_checkpoints",
    metadata,
    sa.Column("projection", sa.String(64), primary_key=True),
    sa.Column("shard", sa.Integer, primary_key=True),
    sa.Column("position", sa.String(32), nullable=False),  # last applied stream entry id
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Catalog: child profiles and videos ---------------------------------------------------------

profiles = sa.Table(
    "profiles",
    metadata,
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
    # Parental policy (domain.policy): JSON as the API shows it, checked before it is stored.
    sa.Column("weekday_limits", sa.JSON, nullable=True),
    sa.Column("bedtime", sa.JSON, nullable=True),
    sa.Column("warning_minutes", sa.SmallInteger, nullable=False, server_default="5"),
    sa.Column("limit_action", sa.String(16), nullable=False, server_default="stop"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_profiles_user_id_id", "user_id", "id"),
)

videos = sa.Table(
    "videos",
    metadata,
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
    sa.Column("min_age", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_videos_user_id_created_at", "user_id", "created_at", "id"),
)

# Watch sessions and parents' stats (projections of session.* events) ---------------------------

watch_sessions = sa.Table(
    "watch_sessions",
    metadata,
    sa.Column("session_id", BIGINT_PK, primary_key=True, autoincrement=False),
    sa.Column("profile_id", sa.BigInteger, nullable=False),
    sa.Column("video_id", sa.BigInteger, nullable=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("public", sa.Boolean, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("local_date", sa.Date, nullable=False),  # local day the session started
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("end_reason", sa.String(16), nullable=True),
    sa.Column("watched_ms", sa.BigInteger, nullable=False),
    sa.Column("position", sa.Float, nullable=True),
    sa.Column("daily_limit_minutes", sa.Integer, nullable=True),  # null: event predates it
    sa.Column("device_id", sa.BigInteger, nullable=True),  # null: no paired device started it
    sa.Index("ix_watch_sessions_profile_started", "profile_id", "started_at"),
)

stats_daily = sa.Table(
    "stats_daily",
    metadata,
    sa.Column("profile_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("local_date", sa.Date, primary_key=True),
    sa.Column("watched_ms", sa.BigInteger, nullable=False),
)

stats_videos = sa.Table(
    "stats_videos",
    metadata,
    sa.Column("profile_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("video_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("watch_count", sa.Integer, nullable=False),  # sessions started on the video
    sa.Column("watched_ms", sa.BigInteger, nullable=False),
)

stats_totals = sa.Table(
    "stats_totals",
    metadata,
    sa.Column("profile_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("watched_ms", sa.BigInteger, nullable=False),
    sa.Column("sessions", sa.Integer, nullable=False),
    sa.Column("watched_sessions", sa.Integer, nullable=False),  # sessions with watched time > 0
)

# The day's ledger: what changed a profile's budget, per local day (projections.ledger) ---------

day_ledger = sa.Table(
    "day_ledger",
    metadata,
    sa.Column("profile_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("local_date", sa.Date, primary_key=True),
    # The event's place in the log: (shard, stream entry ms, sequence) orders a profile's entries.
    sa.Column("shard", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("entry_ms", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("entry_seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # JSON: the entry's fields besides at and type
)

# Safe retries: first answers to requests with an Idempotency-Key (services.idempotency) ---------

idempotency_records = sa.Table(
    "idempotency_records",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),  # sha256 of caller and key
    sa.Column("fingerprint", sa.String(64), nullable=False),  # sha256 of method, path, body
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_idempotency_records_expires_at", "expires_at"),
)

# Kids devices (projection ``devices``: one row per paired device) -------------------------------

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("device_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("profile_id", sa.BigInteger, nullable=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The SHA-256 of the device's token once collected, never the token.
    sa.Column("token_hash", sa.String(64), nullable=True),
    sa.Column("token_issued_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_devices_profile_id", "profile_id"),
)

# Privacy: one data key per family and per child, wrapped by MEDIO_MASTER_KEY (adapters.keyring) --

privacy_keys = sa.Table(
    "privacy_keys",
    metadata,
    # Never reused (AUTOINCREMENT on SQLite too): a deleted key's id must never name a new key.
    sa.Column("id", BIGINT_PK, primary_key=True),
    sa.Column("subject", sa.String(300), nullable=False, unique=True),  # family:<sub>, profile:<id>
    sa.Column("wrapped", sa.LargeBinary, nullable=False),  # nonce + key sealed by the master key
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)
