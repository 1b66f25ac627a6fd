"""RQ queues and the connection they use."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from medio.bootstrap import redis_url
from medio.settings import Settings

PROJECTIONS = "medio-projections"
MAINTENANCE = "medio-maintenance"
QUEUE_NAMES = (MAINTENANCE, PROJECTIONS)


def rq_connection(settings: Settings) -> Redis:
    """A synchronous client for RQ (RQ is not asyncio-based)."""
    return Redis.from_url(redis_url(settings))


def queue(settings: Settings, name: str, connection: Redis | None = None) -> Queue:
    return Queue(name, connection=connection or rq_connection(settings))
