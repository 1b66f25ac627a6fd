"""One event loop and one container per worker process, kept from job to job.

A worker's projector job hands its shards to the worker's next job every
``MEDIO_PROJECTOR_RUN_SECONDS``. When each job forked a work horse and built its own
container, the shards stood still for the fork, new Postgres connections and SQLAlchemy's
first compilation of every statement: 65-110 ms per handover on the 2-core machine, the whole
of the lag bench's tail. Jobs run in the worker process itself (RQ's ``SimpleWorker``) and
their coroutines on this loop, so the next job finds its connections open, its statements
compiled, and the shards handed over in the loop's ``ShardBalancer``.

The loop has a thread of its own rather than the main one: RQ's job timeout and shutdown
signals raise in the main thread, where they always interrupt the wait for the job; raised
inside a running event loop they could be swallowed by a callback. A job whose wait is
interrupted is cancelled; if it does not end within ``ABANDON_SECONDS`` (a cancellation lost
in a driver) its loop is stopped and dropped with it, as the horse's kill did before: its
tasks never run again, so its shard locks expire and other runs take over.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from adapters.container import Container
from adapters.settings import Settings
from services.container import build_container
from workers.balancer import ShardBalancer

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[Container], Coroutine[Any, Any, T]]

ABANDON_SECONDS = 2.0
# Set when the worker is asked to stop: a projector run then ends after its current step
# instead of reading on for the rest of its MEDIO_PROJECTOR_RUN_SECONDS.
SHUTTING_DOWN = threading.Event()


class JobLoop:
    """Runs jobs' coroutines on one long-lived loop with one long-lived container."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        # a connection per shard its projectors may hold (all of them, alone) and one for
        # trimming or a maintenance job
        self.container = build_container(settings, pool_size=settings.stream_shards + 1)
        self.balancer = ShardBalancer(self.container)
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="medio-job-loop", daemon=True
        )
        self._thread.start()

    def run(self, work: Work[T]) -> T:
        """``work(container)`` on the loop; its result, or its exception, in this thread."""
        ended = threading.Event()
        future = asyncio.run_coroutine_threadsafe(self._call(work, ended), self.loop)
        try:
            return future.result()
        finally:
            if not ended.is_set():  # our wait was interrupted (timeout, shutdown), not the job
                self._abandon(future, ended)

    async def _call(self, work: Work[T], ended: threading.Event) -> T:
        try:
            return await work(self.container)
        finally:
            ended.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _abandon(self, future: concurrent.futures.Future[Any], ended: threading.Event) -> None:
        future.cancel()
        if not ended.wait(ABANDON_SECONDS):
            log.warning("a job ignored its cancellation; its event loop is dropped")
            self.stop(close_container=False)

    async def _close(self) -> None:
        try:
            await self.balancer.let_go()
        finally:
            await self.container.close()

    def stop(self, close_container: bool = True) -> None:
        """Release the shards handed over to a next job that will not come and close the
        container (within ``ABANDON_SECONDS``), then stop the loop."""
        if close_container and self.alive:
            closing = asyncio.run_coroutine_threadsafe(self._close(), self.loop)
            with contextlib.suppress(Exception):  # a store that is down: the process ends anyway
                closing.result(timeout=ABANDON_SECONDS)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=ABANDON_SECONDS)


_current: JobLoop | None = None
_guard = threading.Lock()


def job_loop(settings: Settings) -> JobLoop:
    """This process's loop, started by its first job (or again after one was dropped)."""
    global _current
    with _guard:
        if _current is None or not _current.alive:
            _current = JobLoop(settings)
        return _current


def stop_job_loop() -> None:
    """Close the container and stop the loop (the worker is shutting down)."""
    global _current
    with _guard:
        current, _current = _current, None
    if current is not None:
        current.stop()
