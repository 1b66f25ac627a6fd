"""RQ queues, the connection they use, and enqueueing a shard's projector at most once."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from adapters.container import redis_url
from adapters.settings import Settings

PROJECTIONS = "medio-projections"
MAINTENANCE = "medio-maintenance"
QUEUE_NAMES = (MAINTENANCE, PROJECTIONS)

PROJECTOR_JOB = "workers.jobs.project_shard"
QUEUED_PREFIX = "medio:projector:queued:"
QUEUED_TTL_SECONDS = 5  # a job lost before it started (worker killed) is replaced after this
JOB_SLACK_SECONDS = 60


def rq_connection(settings: Settings) -> Redis:
    """A synchronous client for RQ (RQ is not asyncio-based)."""
    return Redis.from_url(redis_url(settings))


def queue(settings: Settings, name: str, connection: Redis | None = None) -> Queue:
    return Queue(name, connection=connection or rq_connection(settings))


def queued_key(shard: int) -> str:
    """Set while a projector job of ``shard`` waits in the queue."""
    return f"{QUEUED_PREFIX}{{{shard}}}"


def enqueue_projector(settings: Settings, connection: Redis, shard: int) -> bool:
    """Queue a projector job for ``shard`` unless one is already waiting; True if queued."""
    if not connection.set(queued_key(shard), "1", nx=True, ex=QUEUED_TTL_SECONDS):
        return False
    queue(settings, PROJECTIONS, connection).enqueue(
        PROJECTOR_JOB,
        shard,
        job_timeout=int(settings.projector_run_seconds) + JOB_SLACK_SECONDS,
        result_ttl=0,
        failure_ttl=3600,
        description=f"projector of shard {shard}",
    )
    return True
