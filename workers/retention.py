"""The retention run as a periodic job (``workers.periodic``): ``services.retention``."""

from __future__ import annotations

import asyncio
import logging

from adapters.settings import Settings, load_settings
from services.container import build_container
from services.retention import apply_retention

log = logging.getLogger(__name__)


def apply_retention_job() -> int:
    """The RQ job: shred personal data older than ``MEDIO_RETENTION_DAYS``; how many events."""
    shredded = asyncio.run(_run(load_settings()))
    if shredded:
        log.info("retention shredded the personal data of %s events", shredded)
    return shredded


async def _run(settings: Settings) -> int:
    container = build_container(settings, pool_size=1)
    try:
        return await apply_retention(container)
    finally:
        await container.close()
