"""Readiness: whether the stores answer, and how far the projections are behind.

``/ready`` (``api/health.py``) asks these; they are use cases like any other so that the API
names no store.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import redis.exceptions
import sqlalchemy as sa

from adapters.container import Container
from projections.lag import READY_COUNT_CAP, as_json, projection_lag

# Errors of a Redis that is unreachable or too slow (not of a bad command): a request that
# meets one can be retried (503).
REDIS_DOWN: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    # a Redis Cluster while a master restarts or fails over: down, moving, or a slot unserved
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
)
CHECK_TIMEOUT_SECONDS = 2.0
LAG_MAX_AGE_SECONDS = 1.0


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
        return name, "ok"
    except Exception:
        return name, "down"


async def _ping_database(container: Container) -> None:
    async with container.engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


async def check_stores(container: Container) -> dict[str, str]:
    """``ok`` or ``down`` for Redis and the database, each within ``CHECK_TIMEOUT_SECONDS``."""
    return dict(
        await asyncio.gather(
            _check("redis", container.redis.ping()),
            _check("database", _ping_database(container)),
        )
    )


class LagCache:
    """The last lag measurement of this process, reused for ``LAG_MAX_AGE_SECONDS``.

    ``/ready`` is public and probes poll it; measuring per request made it a load amplifier
    (24 req/s during a backlog pushed save p50 from 4 to 162 ms). Requests within a second
    share one measurement (a running one included), and each reads at most
    ``READY_COUNT_CAP`` entries per checkpoint.
    """

    def __init__(self) -> None:
        self.measured_at = -math.inf
        self.value: dict[str, Any] = {}
        self.running: asyncio.Task[dict[str, Any]] | None = None

    async def get(self, container: Container) -> dict[str, Any]:
        if time.monotonic() - self.measured_at < LAG_MAX_AGE_SECONDS:
            return self.value
        if self.running is None:
            self.running = asyncio.ensure_future(self._measure(container))
        try:
            return await asyncio.shield(self.running)
        finally:
            self.running = None

    async def _measure(self, container: Container) -> dict[str, Any]:
        """Per projection and shard: entries not yet applied and the age of the oldest (ms)."""
        try:
            lag = await asyncio.wait_for(
                projection_lag(
                    container.redis,
                    container.engine,
                    container.settings.stream_shards,
                    READY_COUNT_CAP,
                ),
                CHECK_TIMEOUT_SECONDS,
            )
        except Exception as exc:  # lag is information; failing to measure it is not unreadiness
            value = {"error": f"lag unavailable: {type(exc).__name__}"}
        else:
            value = as_json(lag)
        self.value, self.measured_at = value, time.monotonic()
        return value


LAG_MAX_AGE_SECONDS = 1.0
