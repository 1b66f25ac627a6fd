"""The ``archive-partitions`` periodic job (``workers.periodic``): keeps
``MEDIO_ARCHIVE_PARTITIONS_AHEAD`` empty archive partitions past the newest archived row
(``adapters.archive_partitions``). Nothing to do on a plain (SQLite) archive."""

from __future__ import annotations

import asyncio
import logging

from adapters.archive_partitions import ensure_partitions
from adapters.settings import Settings, load_settings
from services.container import build_container

log = logging.getLogger(__name__)


def ensure_archive_partitions_job() -> list[str]:
    """The RQ job: make the archive partitions due; their names."""
    made = asyncio.run(ensure_archive_partitions(load_settings()))
    if made:
        log.info("made archive partitions %s", made)
    return made


async def ensure_archive_partitions(settings: Settings) -> list[str]:
    container = build_container(settings, pool_size=1)
    try:
        async with container.engine.begin() as conn:
            made = await ensure_partitions(
                conn, settings.archive_partition_size, settings.archive_partitions_ahead
            )
        return [partition.name for partition in made]
    finally:
        await container.close()
