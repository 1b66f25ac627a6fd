"""The session reaper: ends sessions silent for ``MEDIO_SESSION_TIMEOUT_SECONDS``.

A silent session ends at its last heartbeat (reason ``timeout``), so its watched time is what
its beats accrued. Scheduling is RQ's scheduler (``Queue.enqueue_at``; workers run with
``with_scheduler=True``): time is cut into slots of ``reaper_interval`` seconds and the run of
slot *n* has the job id ``medio-reaper-<n>``. Each run first schedules the next slot, and every
worker schedules the next slot when it starts, so however many workers there are, one job per
slot exists (same id), and a failing run does not break the chain.

Correctness does not hang on the reaper's timing: a late heartbeat or end on a silent session
ends it the same way (``domain.sessions.expire``). The reaper makes ended sessions visible in
the projections without waiting for a client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from redis import Redis

from adapters.container import Container
from adapters.settings import Settings, load_settings
from services.container import build_container
from services.sessions import expire_session, silent_session_ids
from workers.queues import MAINTENANCE, queue, rq_connection

log = logging.getLogger(__name__)

REAPER_JOB = "workers.reaper.reap_sessions_job"
JOB_ID_PREFIX = "medio-reaper-"
BATCH_SIZE = 500
MAX_BATCHES = 20  # a run ends at most this many batches; the next slot takes the rest


def reaper_interval(settings: Settings) -> int:
    """Seconds between runs: a sixth of the timeout, within 5-60 s."""
    return int(max(5, min(60, settings.session_timeout_seconds // 6)))


def schedule_reaper(settings: Settings, connection: Redis, now: float | None = None) -> str:
    """Schedule the run of the next slot (idempotent across workers); returns its job id."""
    interval = reaper_interval(settings)
    slot = int((time.time() if now is None else now) // interval) + 1
    job_id = f"{JOB_ID_PREFIX}{slot}"
    queue(settings, MAINTENANCE, connection).enqueue_at(
        datetime.fromtimestamp(slot * interval, UTC),
        REAPER_JOB,
        job_id=job_id,
        job_timeout=max(30, interval * 2),
        result_ttl=0,
        failure_ttl=86400,
    )
    return job_id


async def reap_silent_sessions(container: Container) -> list[int]:
    """End every session silent for the timeout at ``container.clock.now()``; their ids."""
    now = container.clock.now()
    ended: list[int] = []
    for _ in range(MAX_BATCHES):
        silent = await silent_session_ids(container, now, BATCH_SIZE)
        for session_id in silent:
            if await expire_session(container, session_id, now):
                ended.append(session_id)
        if len(silent) < BATCH_SIZE:
            break
    return ended


def reap_sessions_job() -> int:
    """The RQ job: schedule the next slot, then reap; returns how many sessions it ended."""
    settings = load_settings()
    schedule_reaper(settings, rq_connection(settings))
    ended = asyncio.run(_reap(settings))
    log.log(
        logging.INFO if ended else logging.DEBUG, "session reaper ended %s silent sessions", ended
    )
    return ended


async def _reap(settings: Settings) -> int:
    container = build_container(settings, pool_size=1)
    try:
        return len(await reap_silent_sessions(container))
    finally:
        await container.close()
