"""RQ queues and the connection they use."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from adapters.container import redis_url
from adapters.settings import Settings

MAINTENANCE = "medio-maintenance"
QUEUE_NAMES = (MAINTENANCE,)


def rq_connection(settings: Settings) -> Redis:
    """A synchronous client for RQ (RQ is not asyncio-based)."""
    return Redis.from_url(redis_url(settings))


def queue(settings: Settings, name: str, connection: Redis | None = None) -> Queue:
    return Queue(name, connection=connection or rq_connection(settings))
