"""Periodic pruning of records that have outlived their purpose (``workers.periodic``)."""

from __future__ import annotations

import asyncio
import logging

from adapters.settings import Settings, load_settings
from services.container import build_container
from services.idempotency import prune_expired

log = logging.getLogger(__name__)

PRUNE_IDEMPOTENCY_JOB = "workers.pruning.prune_idempotency_records_job"


def prune_idempotency_records_job() -> int:
    """The RQ job: delete SQL idempotency records past their 24 hours; how many."""
    pruned = asyncio.run(_prune(load_settings()))
    log.info("pruned %s expired idempotency records", pruned)
    return pruned


async def _prune(settings: Settings) -> int:
    container = build_container(settings, pool_size=1)
    try:
        return await prune_expired(container.engine, container.clock.now())
    finally:
        await container.close()
