"""RQ queues, the connection they use, and each worker's own projector queue.

RQ keeps a job's hash, its queue's list and its registries under different keys and changes
them together in one ``MULTI`` (and scripts), which a Redis Cluster refuses across slots; RQ
has no Redis Cluster support (rq/rq issue #1942, "CROSSSLOT Keys in request don't hash to the
same slot"). So the queues live on ``MEDIO_QUEUE_URL``: by default the same Redis as the event
log, and with ``MEDIO_REDIS_CLUSTER=true`` a plain Redis of their own. It holds only job
bookkeeping: losing it loses no event (the supervisor queues the projector jobs again).

Maintenance jobs (the reaper, the periodic jobs) go to one shared queue that any worker serves.
Projector jobs go to a queue of each worker's own (``projector_queue``), so that every worker
has exactly one projector job queued or running: RQ has no way to address a job to a worker
otherwise, and two projector jobs on one worker (or none) would break the fair share.
"""

from __future__ import annotations

from redis import Redis
from redis.cluster import RedisCluster
from rq import Queue

from adapters.container import redis_url
from adapters.settings import Settings

MAINTENANCE = "medio-maintenance"
PROJECTOR_QUEUE_PREFIX = "medio-projector:"

PROJECTOR_JOB = "workers.jobs.project_share"
QUEUED_PREFIX = "medio:projector:queued:"
JOB_SLACK_SECONDS = 60


def rq_connection(settings: Settings) -> Redis:
    """RQ's own connection (RQ is synchronous and pickles job data: no response decoding)."""
    return Redis.from_url(settings.queue_url or redis_url(settings), decode_responses=False)


def data_connection(settings: Settings) -> Redis:
    """A synchronous connection to the event log's Redis (a cluster client on a cluster), for
    the few keys a synchronous worker thread reads there (the projectors' pause)."""
    if settings.redis_cluster:
        return RedisCluster.from_url(redis_url(settings))  # type: ignore[return-value]
    return Redis.from_url(redis_url(settings))


def queue(settings: Settings, name: str, connection: Redis | None = None) -> Queue:
    return Queue(name, connection=connection or rq_connection(settings))


def projector_queue(worker: str) -> str:
    """The queue only ``worker`` serves: its projector job and that job's successors."""
    return f"{PROJECTOR_QUEUE_PREFIX}{worker}"


def worker_queues(worker: str) -> list[str]:
    """What ``worker`` serves, maintenance first: a projector job's successor waits behind a
    due maintenance job (the projector hands its shards over across the gap)."""
    return [MAINTENANCE, projector_queue(worker)]


def queued_key(worker: str) -> str:
    """Set while a projector job of ``worker`` is queued or running."""
    return f"{QUEUED_PREFIX}{worker}"


def job_seconds(settings: Settings) -> int:
    """How long a projector job may wait and run before RQ (and the queued key) give up on it."""
    return int(settings.projector_run_seconds) + JOB_SLACK_SECONDS


def enqueue_projector(
    settings: Settings, connection: Redis, worker: str, successor: bool = False
) -> bool:
    """Queue a projector job on ``worker``'s own queue; True if queued.

    The supervisor queues one only if none is queued or running (``queued_key``); a running
    job queues its ``successor`` unconditionally, being the one that key stands for.
    """
    ttl = job_seconds(settings)
    if not connection.set(queued_key(worker), "1", nx=not successor, ex=ttl):
        return False
    name = projector_queue(worker)
    queue(settings, name, connection).enqueue(
        PROJECTOR_JOB,
        worker,
        job_timeout=ttl,
        ttl=ttl,  # a job its worker never starts (the worker was killed) is dropped
        result_ttl=0,
        failure_ttl=3600,
        description=f"projector of worker {worker}",
    )
    connection.expire(Queue(name, connection=connection).key, ttl)  # nor is its queue kept
    return True


def drop_projector_queue(settings: Settings, connection: Redis, worker: str) -> None:
    """Remove ``worker``'s queue and queued job (the worker is stopping)."""
    queue(settings, projector_queue(worker), connection).delete(delete_jobs=True)
    connection.delete(queued_key(worker))
