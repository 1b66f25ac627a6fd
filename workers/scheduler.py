"""RQ's scheduler, made to outlive a Redis restart and to die with its worker.

RQ runs the scheduler (which moves ``enqueue_at`` jobs such as the reaper onto their queues)
in a child process forked by the worker. As shipped it has two faults that showed under fault
runs: its loop lets any Redis error end the process, and the worker restarts a dead scheduler
only at its maintenance round (every 10 minutes), so a Redis restart stalled the reaper for
about 8.5 minutes; and when the worker is killed (``kill -9``), the child lives on as an
orphan, renewing its locks, so no other worker's scheduler could take over.

The worker itself quit on a Redis error outside its dequeue; ``ResilientWorker`` goes on. And
a stopped worker could hang for up to a minute on its way out (``unsubscribe`` below).

``MedioScheduler`` keeps RQ's steps and changes only the loop: a round that meets Redis
down is logged and retried after the interval, and the loop stops (releasing its locks) as
soon as its worker is gone, noticed by ``PR_SET_PDEATHSIG`` on Linux (a ``SIGTERM`` when the
parent dies) and, anywhere, by the parent pid changing. ``ResilientWorker`` is RQ's
``SimpleWorker`` starting this scheduler instead of RQ's own (``_start_scheduler`` is RQ's
method with the class replaced, and the scheduler given the shared queues only: every worker
serves a projector queue of its own, where nothing is ever scheduled, and RQ would otherwise
have every worker win that queue's lock and fork a scheduler for it).
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import logging
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import SimpleWorker
from rq.scheduler import RQScheduler

from workers.queues import MAINTENANCE

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h
MAINTENANCE_SECONDS = 30
PUBSUB_STOP_SECONDS = 1.0
REDIS_AWAY = (RedisConnectionError, RedisTimeoutError, OSError)


def die_with_parent() -> None:
    """Ask Linux to send this process ``SIGTERM`` when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class MedioScheduler(RQScheduler):
    """RQ's scheduler loop, surviving Redis outages and ending with its worker."""

    parent_pid = 0

    def start(self) -> BaseProcess:
        self.parent_pid = os.getpid()  # the worker's, copied into the forked child
        process: BaseProcess = super().start()  # type: ignore[no-untyped-call]
        return process

    def orphaned(self) -> bool:
        return os.getppid() != self.parent_pid

    def work(self) -> None:
        die_with_parent()
        self._install_signal_handlers()  # type: ignore[no-untyped-call]
        born = False
        while True:
            if self._stop_requested or self.orphaned():
                self._stop()
                return
            try:
                if not born:
                    self.register_birth()
                    born = True
                if self.should_reacquire_locks:
                    self.acquire_locks()  # type: ignore[no-untyped-call]
                self.heartbeat()  # type: ignore[no-untyped-call]
                self.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
            except REDIS_AWAY as exc:  # Redis restarting: the next round tries again
                log.warning("scheduler round failed, retrying: %r", exc)
            time.sleep(self.interval)

    def _stop(self) -> None:
        """Release the locks (another worker's scheduler takes over at once), if Redis answers."""
        try:
            self.stop()  # type: ignore[no-untyped-call]
        except REDIS_AWAY as exc:  # the locks then expire by themselves
            log.warning("scheduler stopped without releasing its locks: %r", exc)


class ResilientWorker(SimpleWorker):
    """``SimpleWorker`` whose scheduler is ``MedioScheduler``, and whose loop outlives Redis
    restarting: RQ retries its blocking dequeue, but an error in the suspension check or the
    maintenance round at the top of its loop ended the worker (seen under a Redis restart)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # A scheduler that could not take its locks (still held by the one a restart ended)
        # tries again at the maintenance round: every 30 s rather than RQ's 10 minutes.
        kwargs.setdefault("maintenance_interval", MAINTENANCE_SECONDS)
        super().__init__(*args, **kwargs)

    @property
    def stop_was_requested(self) -> bool:
        """Whether the worker was asked to stop (a signal), not ended by an error.

        RQ marks ``_stop_requested`` only for a stop asked during a job; an idle worker's
        stop shows as the shutdown's date alone.
        """
        return bool(self._stop_requested) or self._shutdown_requested_date is not None

    def check_for_suspension(self, burst: bool) -> None:
        try:
            super().check_for_suspension(burst)
        except REDIS_AWAY as exc:  # the dequeue that follows waits for Redis, as RQ does
            log.warning("suspension check failed, going on: %r", exc)
            time.sleep(1)

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        except REDIS_AWAY as exc:  # the next round cleans up
            log.warning("maintenance round failed, going on: %r", exc)

    def unsubscribe(self) -> None:
        """RQ's, with the wait for its pub/sub thread bounded.

        RQ's thread polls every 60 s. Once unsubscribed, redis-py's thread sleeps out that poll
        waiting to be subscribed again, and redis-py 8's ``PubSubWorkerThread.stop()`` joins it
        with no timeout: a worker asked to stop hung up to a minute after its last job whenever
        the thread read the unsubscribe reply before ``stop()`` (py-spy on a stopped worker that
        a rebalance test gave 15 s: ``PubSubWorkerThread.stop``). The thread is a daemon and
        holds nothing: it is given ``PUBSUB_STOP_SECONDS``, as RQ's own join after ``stop()``.
        """
        thread, pubsub = self.pubsub_thread, self.pubsub
        if thread is None or pubsub is None:
            return
        pubsub.unsubscribe()
        if "timeout" in inspect.signature(thread.stop).parameters:  # redis-py 8 waits
            thread.stop(timeout=PUBSUB_STOP_SECONDS)
        else:  # older redis-py only clears the thread's flag
            thread.stop()
            thread.join(timeout=PUBSUB_STOP_SECONDS)
        pubsub.close()

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = "",
        log_format: str = "",
    ) -> None:
        options: dict[str, Any] = {"serializer": self.serializer}
        options["logging_level"] = logging_level if logging_level is not None else self.log.level
        if date_format:
            options["date_format"] = date_format
        if log_format:
            options["log_format"] = log_format
        scheduled = [queue for queue in self.queues if queue.name == MAINTENANCE]
        self.scheduler = MedioScheduler(scheduled, connection=self.connection, **options)
        self.scheduler.acquire_locks()  # type: ignore[no-untyped-call]
        if not self.scheduler.acquired_locks:
            return
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
            finally:
                self.scheduler.release_locks()  # type: ignore[no-untyped-call]
                self.scheduler.register_death()
        else:
            self.scheduler.start()
