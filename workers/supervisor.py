"""Enqueues the periodic jobs that are due: a background thread of every ``medio worker``.

Every second it enqueues each job of ``workers.periodic.PERIODIC_JOBS`` whose interval has
passed (one worker of many wins the job's key). Which shards a worker projects is decided by
its shard balancer (``workers.balancer``), not by jobs.
"""

from __future__ import annotations

import logging
import threading

from redis import Redis
from redis.exceptions import RedisError

from adapters.settings import Settings
from workers.periodic import PERIODIC_JOBS, due_key
from workers.queues import queue, rq_connection

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 1.0


def supervise_once(settings: Settings, connection: Redis) -> None:
    """One round: enqueue the periodic jobs that are due."""
    for job in PERIODIC_JOBS:
        if connection.set(due_key(job), "1", nx=True, px=max(int(job.every_seconds * 1000), 1)):
            queue(settings, job.queue, connection).enqueue(
                job.function, job_timeout=job.timeout_seconds, result_ttl=0, failure_ttl=86400
            )


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
                supervise_once(self.settings, connection)
            except RedisError as exc:
                log.warning("supervisor round failed: %s", exc)

    def stop(self) -> None:
        self.stopping.set()
