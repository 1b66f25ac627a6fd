"""``medio worker``: an RQ worker for the maintenance queue and its own projector queue.

Besides serving jobs it runs the supervisor thread (its projector job, periodic jobs). Its
projector job projects the worker's fair share of the shards and queues the next one
(``workers.balancer``), so any number of identical workers keep every shard projected and
share the shards as they come and go. Jobs run in this process (``SimpleWorker``, no work
horse forked per job) on one event loop and container kept for the life of the process
(``workers.job_loop``): a projector job hands its shards to the next job in a few Redis round
trips instead of a fork and fresh connections.

RQ logs through Medio's JSON formatter. Its per-job lines (a projector job starts and ends
every ``MEDIO_PROJECTOR_RUN_SECONDS`` per worker, the reaper every slot, the scheduler ticks)
are routine: at ``MEDIO_LOG_LEVEL=INFO`` only RQ's warnings and errors show, so an idle worker
is quiet; ``DEBUG`` shows them all. RQ's scheduler child survives Redis restarts and stops
with its worker (``workers.scheduler``).
"""

from __future__ import annotations

import logging
import time
from types import FrameType
from typing import Any

from redis.exceptions import RedisError
from rq.exceptions import StopRequested

import workers.jobs  # noqa: F401  (loaded at start, not by the first job)
from adapters.lifeline import forks_die_with_this_process
from adapters.logs import configure_logging
from adapters.settings import Settings
from projections.locks import consumer_name
from workers.balancer import WORKERS_KEY
from workers.job_loop import SHUTTING_DOWN, stop_job_loop
from workers.queues import drop_projector_queue, rq_connection, worker_queues
from workers.reaper import schedule_reaper
from workers.scheduler import REDIS_AWAY, ResilientWorker
from workers.supervisor import Supervisor

log = logging.getLogger(__name__)

RQ_LOGGERS = ("rq.worker", "rq.job", "rq.scheduler", "rq.queue")
RESTART_PAUSE_SECONDS = 1.0


class MedioWorker(ResilientWorker):
    """RQ's in-process worker whose warm shutdown also ends a running projector job early:
    otherwise Ctrl-C waited for the rest of the job (up to ``MEDIO_PROJECTOR_RUN_SECONDS``)."""

    def request_stop(self, signum: int, frame: FrameType | None) -> Any:
        SHUTTING_DOWN.set()
        return super().request_stop(signum, frame)  # type: ignore[no-untyped-call]


def quiet_rq(level: str) -> None:
    """RQ's loggers at WARNING unless Medio logs at DEBUG (see the module's docstring)."""
    rq_level = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in RQ_LOGGERS:
        logging.getLogger(name).setLevel(rq_level)


def run_worker(settings: Settings, burst: bool = False) -> None:
    """Serve jobs until stopped (or, with ``burst``, until the queues are empty)."""
    configure_logging(settings.log_level)
    quiet_rq(settings.log_level)
    forks_die_with_this_process()  # RQ's scheduler process ends with this worker
    connection = rq_connection(settings)
    name = consumer_name()  # its heartbeat in the live set and its projector queue
    queues = worker_queues(name)
    supervisor = Supervisor(settings, name)
    if not burst:  # projector jobs queue their next run, so a burst would never end
        supervisor.start()
        schedule_reaper(settings, connection)  # RQ's scheduler; each run schedules the next
    log.info("worker serving %s", ", ".join(queues))
    try:
        while True:
            worker = MedioWorker(queues, connection=connection)
            try:
                # logging_level None: RQ adds no handler of its own (the JSON one is there) and
                # keeps the levels set above
                worker.work(burst=burst, with_scheduler=True, logging_level=None)
            except REDIS_AWAY as exc:  # its teardown, too, needs Redis
                log.warning("the RQ worker ended on %r; starting it again", exc)
            else:
                if burst or worker.stop_was_requested:
                    return
                # RQ ends its loop on a Redis error outside its dequeue (a restart): go on.
                log.warning("the RQ worker quit unasked (Redis away?); starting it again")
            try:
                time.sleep(RESTART_PAUSE_SECONDS)
            except StopRequested:  # RQ's signal handler, still installed
                return
    finally:
        supervisor.stop()
        stop_job_loop()  # its projectors let their shards go
        try:
            drop_projector_queue(settings, connection, name)
            connection.zrem(WORKERS_KEY, name)  # the others take its share at once
        except RedisError as exc:  # gone in their TTLs
            log.warning("leaving the worker set failed: %s", exc)
