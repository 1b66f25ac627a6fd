"""``medio worker``: the projectors of its share of the shards, and an RQ worker for the
maintenance queue.

The projectors run in a thread of their own (``workers.balancer``): the worker keeps
``ceil(shards / live workers)`` shards projected and gives shards up or takes free ones as
workers come and go, so any number of identical workers keep every shard projected. RQ serves
the maintenance jobs (the session reaper, the periodic jobs the supervisor thread enqueues) in
this process (``SimpleWorker``, no work horse forked per job).

RQ logs through Medio's JSON formatter. Its per-job lines (the reaper every slot, the
scheduler ticks) are routine: at ``MEDIO_LOG_LEVEL=INFO`` only RQ's warnings and errors show,
so an idle worker is quiet; ``DEBUG`` shows them all. RQ's scheduler child survives Redis
restarts and stops with its worker (``workers.scheduler``).
"""

from __future__ import annotations

import logging
import time
from types import FrameType
from typing import Any

from rq.exceptions import StopRequested

from adapters.lifeline import forks_die_with_this_process
from adapters.logs import configure_logging
from adapters.settings import Settings
from workers.balancer import ProjectorThread
from workers.queues import QUEUE_NAMES, rq_connection
from workers.reaper import schedule_reaper
from workers.scheduler import REDIS_AWAY, ResilientWorker
from workers.supervisor import Supervisor

log = logging.getLogger(__name__)

RQ_LOGGERS = ("rq.worker", "rq.job", "rq.scheduler", "rq.queue")
RESTART_PAUSE_SECONDS = 1.0


class MedioWorker(ResilientWorker):
    """RQ's in-process worker whose warm shutdown also lets the worker's shards go at once,
    rather than once RQ's current job has ended."""

    projectors: ProjectorThread | None = None

    def request_stop(self, signum: int, frame: FrameType | None) -> Any:
        if self.projectors is not None:
            self.projectors.stop_requested.set()
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
    supervisor = Supervisor(settings)
    projectors = ProjectorThread(settings)
    if not burst:  # a burst serves the queued jobs only
        projectors.start()
        supervisor.start()
        schedule_reaper(settings, connection)  # RQ's scheduler; each run schedules the next
    log.info("worker serving %s", ", ".join(QUEUE_NAMES))
    try:
        while True:
            worker = MedioWorker(list(QUEUE_NAMES), connection=connection)
            worker.projectors = projectors
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
        if projectors.is_alive():
            projectors.stop()
