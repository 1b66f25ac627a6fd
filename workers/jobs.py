"""RQ job functions. They run in the worker process, on its long-lived ``JobLoop``."""

from __future__ import annotations

import asyncio
import logging

from redis import Redis

from adapters.container import Container
from adapters.settings import load_settings
from projections.locks import PAUSE_KEY
from projections.redis_generation import RedisNotChecked
from projections.runtime import HANDOVER_LEAD, run_projector
from workers.job_loop import SHUTTING_DOWN, job_loop
from workers.queues import enqueue_projector, queued_key, rq_connection

log = logging.getLogger(__name__)


def project_shard(shard: int) -> int:
    """Project ``shard`` for ``MEDIO_PROJECTOR_RUN_SECONDS``, queueing the next run near the end.

    A bounded run (rather than one endless job) keeps RQ's view of the worker honest and lets
    another worker take the shard over between runs. The successor is queued shortly before
    the end and waits for the lock, so there is no gap between runs; a job that cannot get the
    lock within the lock's TTL leaves the shard to its holder (or to the supervisor).
    """
    settings = load_settings()
    with rq_connection(settings) as connection:
        connection.delete(queued_key(shard))
        applied = job_loop(settings).run(lambda c: _project(c, connection, shard))
    # an idle run is routine (one per shard every MEDIO_PROJECTOR_RUN_SECONDS): DEBUG
    log.log(
        logging.INFO if applied else logging.DEBUG,
        "projector of shard %s applied %s events",
        shard,
        applied or 0,
    )
    return applied or 0


async def _project(container: Container, connection: Redis, shard: int) -> int | None:
    settings = container.settings

    async def queue_successor() -> None:
        if not await container.redis.exists(PAUSE_KEY):
            await asyncio.to_thread(enqueue_projector, settings, connection, shard)

    try:
        return await run_projector(
            container,
            shard,
            wait_seconds=HANDOVER_LEAD + settings.projector_lock_ttl_seconds + 1,
            successor=queue_successor,
            stopping=SHUTTING_DOWN.is_set,
        )
    except RedisNotChecked:  # Redis restarted under the run: the next run checks it first
        log.warning("shard %s: Redis restarted; its next run checks it against the archive", shard)
        return None
