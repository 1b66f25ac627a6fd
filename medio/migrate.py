"""Run Alembic revisions programmatically (``medio migrate``, ``medio dev``, tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from adapters.container import build_adapters
from adapters.settings import Settings
from projections.key_migration import rename_legacy_keys


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


def migrate_redis(settings: Settings) -> int:
    """Rename an older Medio's untagged command-side keys (``projections.key_migration``); how
    many moved. A cluster is left alone: it never held them."""
    if settings.redis_cluster:
        return 0

    async def run() -> int:
        container = build_adapters(settings)
        try:
            return await rename_legacy_keys(container.redis, settings.stream_shards)
        finally:
            await container.close()

    return asyncio.run(run())
