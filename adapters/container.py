"""The container of adapters: every store and client, built from settings.

Nothing here connects on construction; Redis and the database connect on first use, and
``close`` releases both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.answer_cache import AnswerCache, PageCache
from adapters.autopipeline import AutoPipeline
from adapters.clock import SystemClock
from adapters.cluster import cluster_client, raw_replies
from adapters.data_dir import embedded_redis_url
from adapters.db import create_engine
from adapters.eventlog import EventLog
from adapters.keyring import Keyring, keyring_for
from adapters.list_cache import ListCache
from adapters.settings import Settings
from domain.clock import Clock

REDIS_TIMEOUT_SECONDS = 10.0


def redis_url(settings: Settings) -> str:
    """The configured Redis, else the embedded one of the ``medio dev`` on the data dir."""
    return settings.redis_url or embedded_redis_url(settings)


@dataclass
class Container:
    """Everything a request, a job or a command needs, built once per process (or per job)."""

    settings: Settings
    redis: Redis
    engine: AsyncEngine
    events: EventLog
    pipeline: AutoPipeline  # Redis commands of concurrent requests, one round trip
    clock: Clock = field(default_factory=SystemClock)
    lists: ListCache = field(default_factory=ListCache)  # progress lists this process keeps
    answers: AnswerCache = field(default_factory=AnswerCache)  # profile reads it keeps
    pages: PageCache = field(default_factory=PageCache)  # full feed pages it keeps

    @property
    def keyring(self) -> Keyring:
        """The privacy keys, under this deployment's master key (read on first use)."""
        return keyring_for(self.settings)

    async def close(self) -> None:
        await self.pipeline.close()
        await self.redis.aclose()
        await self.engine.dispose()


def _redis(settings: Settings, socket_timeout: float | None) -> Redis:
    if settings.redis_cluster:  # routes each key to its slot's master (adapters.cluster)
        return cluster_client(
            redis_url(settings),
            socket_connect_timeout=2,
            socket_timeout=socket_timeout,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        )
    return Redis.from_url(
        redis_url(settings),
        health_check_interval=10,
        socket_connect_timeout=2,
        socket_timeout=socket_timeout,
        # A restarted Redis is reconnected to transparently: a few quick retries, then 503.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def build_adapters(
    settings: Settings,
    clock: Clock | None = None,
    pool_size: int = 10,
    overflow: int | None = None,
) -> Container:
    """Wire the adapters for ``settings``, without the command-side check on ``pipeline.gate``.

    Processes build theirs with ``services.container.build_container``, which adds that check.
    """
    redis = _redis(settings, REDIS_TIMEOUT_SECONDS)
    # Its own connections, timed per round trip rather than per reply (adapters.autopipeline).
    own = _redis(settings, None)
    pipeline = AutoPipeline(
        raw_replies(own) if settings.redis_cluster else own, timeout=REDIS_TIMEOUT_SECONDS
    )
    container = Container(
        settings=settings,
        redis=redis,
        engine=create_engine(settings, pool_size=pool_size, overflow=overflow),
        events=EventLog(redis, shards=settings.stream_shards, pipeline=pipeline),
        pipeline=pipeline,
        clock=clock or SystemClock(),
    )
    return container
