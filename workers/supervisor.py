"""Keeps its worker's projector job queued, and runs the periodic jobs.

Each ``medio worker`` runs one in a background thread. Every second it queues a projector job
on its worker's own queue if none is queued or running (the worker just started, a pause of
the projectors ended, a job was lost), and enqueues periodic jobs that are due. Once running,
a projector job queues its own successor (``workers.jobs``).
"""

from __future__ import annotations

import logging
import threading

from redis import Redis
from redis.exceptions import RedisError

from adapters.settings import Settings
from projections.locks import PAUSE_KEY
from workers.periodic import PERIODIC_JOBS, due_key
from workers.queues import data_connection, enqueue_projector, queue, rq_connection

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 1.0


def supervise_once(
    settings: Settings, connection: Redis, worker: str, data: Redis | None = None
) -> bool:
    """One round: queue what is missing; True if a projector job was queued for ``worker``.

    ``connection``: RQ's; ``data``: the event log's Redis, where a replay pauses the projectors
    (the same Redis unless the queues have their own, ``workers.queues``)."""
    paused = (data or connection).exists(PAUSE_KEY)
    queued = not paused and enqueue_projector(settings, connection, worker)
    for job in PERIODIC_JOBS:
        if connection.set(due_key(job), "1", nx=True, px=max(int(job.every_seconds * 1000), 1)):
            queue(settings, job.queue, connection).enqueue(
                job.function, job_timeout=job.timeout_seconds, result_ttl=0, failure_ttl=86400
            )
    return queued


class Supervisor(threading.Thread):
    """The background thread of one worker process."""

    def __init__(self, settings: Settings, worker: str) -> None:
        super().__init__(name="medio-supervisor", daemon=True)
        self.settings = settings
        self.worker = worker
        self.stopping = threading.Event()

    def run(self) -> None:
        connection = rq_connection(self.settings)
        data = data_connection(self.settings) if self.settings.queue_url else connection
        while not self.stopping.wait(INTERVAL_SECONDS):
            try:
                if supervise_once(self.settings, connection, self.worker, data):
                    log.info("queued a projector job for worker %s", self.worker)
            except RedisError as exc:
                log.warning("supervisor round failed: %s", exc)

    def stop(self) -> None:
        self.stopping.set()
