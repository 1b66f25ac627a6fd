"""Run Alembic revisions programmatically (``medio migrate``, ``medio dev``, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from medio.settings import Settings


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
