"""Run Alembic revisions programmatically (``medio migrate``, ``medio dev``, tests)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from adapters.settings import Settings


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database of ``settings`` to ``revision``."""
    if settings.is_sqlite:
        settings.data_path.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), revision)


async def is_migrated(engine: AsyncEngine) -> bool:
    """Whether ``medio migrate`` has run on the database (Alembic's version table exists)."""
    async with engine.connect() as conn:
        return bool(await conn.run_sync(lambda sync: sa.inspect(sync).has_table("alembic_version")))
