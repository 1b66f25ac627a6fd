"""``medio worker``: an RQ worker for the projection and maintenance queues.

Besides serving jobs it runs the supervisor thread (projector jobs for unowned shards,
periodic jobs), so any number of identical workers keep every shard projected. Jobs run in
this process (``SimpleWorker``, no work horse forked per job) on one event loop and container
kept for the life of the process (``workers.job_loop``): a projector run hands its shard to the
next run in a few Redis round trips instead of a fork and fresh connections.
"""

from __future__ import annotations

from rq import SimpleWorker

import workers.jobs  # noqa: F401  (loaded at start, not by the first job)
from medio.settings import Settings
from workers.job_loop import stop_job_loop
from workers.queues import QUEUE_NAMES, rq_connection
from workers.reaper import schedule_reaper
from workers.supervisor import Supervisor


def run_worker(settings: Settings, burst: bool = False) -> None:
    """Serve jobs until stopped (or, with ``burst``, until the queues are empty)."""
    connection = rq_connection(settings)
    worker = SimpleWorker(list(QUEUE_NAMES), connection=connection)
    supervisor = Supervisor(settings)
    if not burst:  # projector jobs queue their next run, so a burst would never end
        supervisor.start()
        schedule_reaper(settings, connection)  # RQ's scheduler; each run schedules the next
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level.upper())
    finally:
        supervisor.stop()
        stop_job_loop()
