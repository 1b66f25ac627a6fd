"""The SQLAlchemy async engine for Postgres (asyncpg) or the embedded SQLite."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from adapters.settings import Settings


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(settings: Settings, pool_size: int = 10) -> AsyncEngine:
    """An engine for ``settings``; connects lazily, on first use."""
    if settings.is_sqlite:
        settings.data_path.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(settings.sqlalchemy_url)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        settings.sqlalchemy_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )
