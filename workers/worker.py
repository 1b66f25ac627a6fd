"""``medio worker``: an RQ worker for the projection and maintenance queues.

Besides serving jobs it runs the supervisor thread (projector jobs for unowned shards,
periodic jobs), so any number of identical workers keep every shard projected.
"""

from __future__ import annotations

from rq import Worker

import workers.jobs  # noqa: F401  (loaded before RQ forks, so each job skips the imports)
from medio.settings import Settings
from workers.queues import QUEUE_NAMES, rq_connection
from workers.reaper import schedule_reaper
from workers.supervisor import Supervisor


def run_worker(settings: Settings, burst: bool = False) -> None:
    """Serve jobs until stopped (or, with ``burst``, until the queues are empty)."""
    connection = rq_connection(settings)
    worker = Worker(list(QUEUE_NAMES), connection=connection)
    supervisor = Supervisor(settings)
    if not burst:  # projector jobs queue their next run, so a burst would never end
        supervisor.start()
        schedule_reaper(settings, connection)  # RQ's scheduler; each run schedules the next
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level.upper())
    finally:
        supervisor.stop()
