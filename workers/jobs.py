"""RQ job functions. They run in the worker process, on its long-lived ``JobLoop``."""

from __future__ import annotations

import asyncio
import logging

from redis import Redis

from adapters.container import Container
from adapters.settings import load_settings
from projections.locks import PAUSE_KEY
from workers.job_loop import SHUTTING_DOWN, JobLoop, job_loop
from workers.queues import enqueue_projector, job_seconds, queued_key, rq_connection

log = logging.getLogger(__name__)


def project_share(worker: str) -> int:
    """Project ``worker``'s fair share of the shards for ``MEDIO_PROJECTOR_RUN_SECONDS``,
    queueing the worker's next job near the end (``workers.balancer``).

    A bounded job (rather than one endless job) keeps RQ's view of the worker honest, lets the
    worker serve maintenance jobs between runs, and bounds how long a worker that stopped
    renewing holds its shards: the ones it keeps are handed to its next job, and expire if
    none comes.
    """
    jobs = job_loop(load_settings())
    settings = jobs.container.settings
    queued: list[bool] = []
    with rq_connection(settings) as connection:
        connection.set(queued_key(worker), "1", ex=job_seconds(settings))  # running now
        try:
            applied = jobs.run(lambda c: _project(c, jobs, connection, worker, queued))
        finally:
            if not queued:  # paused or stopping: the supervisor queues the next one, if any
                connection.delete(queued_key(worker))
    # an idle job is routine (one per worker every MEDIO_PROJECTOR_RUN_SECONDS): DEBUG
    log.log(
        logging.INFO if applied else logging.DEBUG,
        "projector job of worker %s applied %s events",
        worker,
        applied,
    )
    return applied


async def _project(
    container: Container, jobs: JobLoop, connection: Redis, worker: str, queued: list[bool]
) -> int:
    settings = container.settings

    async def queue_successor() -> None:
        if not await container.redis.exists(PAUSE_KEY):
            await asyncio.to_thread(enqueue_projector, settings, connection, worker, True)
            queued.append(True)

    return await jobs.balancer.run(
        worker, settings.projector_run_seconds, SHUTTING_DOWN.is_set, queue_successor
    )
