"""``medio worker``: an RQ worker for the projection and maintenance queues."""

from __future__ import annotations

from rq import Worker

from medio.settings import Settings
from workers.queues import QUEUE_NAMES, rq_connection


def run_worker(settings: Settings, burst: bool = False) -> None:
    """Serve jobs until stopped (or, with ``burst``, until the queues are empty)."""
    connection = rq_connection(settings)
    worker = Worker(list(QUEUE_NAMES), connection=connection)
    worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level.upper())
