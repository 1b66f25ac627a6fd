"""RQ job functions. Each builds its own container (a job runs in a forked work horse)."""

from __future__ import annotations

import asyncio
import logging

from medio.bootstrap import build_container
from medio.settings import Settings, load_settings
from projections.locks import PAUSE_KEY
from projections.runtime import run_projector
from workers.queues import enqueue_projector, queued_key, rq_connection

log = logging.getLogger(__name__)


def project_shard(shard: int) -> int:
    """Project ``shard`` for ``MEDIO_PROJECTOR_RUN_SECONDS``, then queue the next run.

    A bounded run (rather than one endless job) keeps RQ's view of the worker honest and lets
    another worker take the shard over between runs; a job that finds the shard locked leaves
    it to the holder.
    """
    settings = load_settings()
    connection = rq_connection(settings)
    connection.delete(queued_key(shard))
    applied = asyncio.run(_project(settings, shard))
    if applied is not None and not connection.exists(PAUSE_KEY):
        enqueue_projector(settings, connection, shard)
    log.info("projector of shard %s applied %s events", shard, applied or 0)
    return applied or 0


async def _project(settings: Settings, shard: int) -> int | None:
    container = build_container(settings, pool_size=2)
    try:
        return await run_projector(container, shard)
    finally:
        await container.close()
