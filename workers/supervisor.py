"""Keeps a projector job queued for every shard nobody projects, and runs the periodic jobs.

Each ``medio worker`` runs one in a background thread. Every second it queues a projector job
for each shard whose lock is free and that has no job waiting, so a dead worker's shard is
taken over within the lock's TTL plus a second, and enqueues periodic jobs that are due.
"""

from __future__ import annotations

import logging
import threading

from redis import Redis
from redis.exceptions import RedisError

from adapters.settings import Settings
from projections.locks import PAUSE_KEY, lock_key
from workers.periodic import PERIODIC_JOBS, due_key
from workers.queues import enqueue_projector, queue, queued_key, rq_connection

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 1.0


def supervise_once(settings: Settings, connection: Redis) -> list[int]:
    """One round: queue what is missing; returns the shards a projector was queued for."""
    queued: list[int] = []
    shards = range(settings.stream_shards)
    pipe = connection.pipeline(transaction=False)
    pipe.exists(PAUSE_KEY)
    for shard in shards:
        pipe.exists(lock_key(shard), queued_key(shard))
    paused, *busy = pipe.execute()
    if not paused:
        for shard, taken in zip(shards, busy, strict=True):
            if not taken and enqueue_projector(settings, connection, shard):
                queued.append(shard)
    for job in PERIODIC_JOBS:
        if connection.set(due_key(job), "1", nx=True, px=max(int(job.every_seconds * 1000), 1)):
            queue(settings, job.queue, connection).enqueue(
                job.function, job_timeout=job.timeout_seconds, result_ttl=0, failure_ttl=86400
            )
    return queued


class Supervisor(threading.Thread):
    """The background thread of one worker process."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="medio-supervisor", daemon=True)
        self.settings = settings
        self.stopping = threading.Event()

    def run(self) -> None:
        connection = rq_connection(self.settings)
        while not self.stopping.wait(INTERVAL_SECONDS):
            try:
                for shard in supervise_once(self.settings, connection):
                    log.info("queued a projector for shard %s", shard)
            except RedisError as exc:
                log.warning("supervisor round failed: %s", exc)

    def stop(self) -> None:
        self.stopping.set()
