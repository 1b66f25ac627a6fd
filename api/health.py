"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import sqlalchemy as sa
from litestar import Controller, get

from api.deps import ContainerDep
from api.errors import ApiError
from medio.bootstrap import Container
from projections.lag import as_json, projection_lag

CHECK_TIMEOUT_SECONDS = 2.0


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]
    projections: dict[str, Any] = msgspec.field(default_factory=dict)


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
        return name, "ok"
    except Exception:
        return name, "down"


async def _ping_database(container: Container) -> None:
    async with container.engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


class HealthController(Controller):
    """``/health`` says the process is alive; ``/ready`` that its stores answer."""

    include_in_schema = True

    @get("/health", summary="Liveness")
    async def health(self) -> Health:
        return Health(status="ok")

    @get("/ready", summary="Readiness: Redis and the database answer; projection lag")
    async def ready(self, container: ContainerDep) -> Readiness:
        results = dict(
            await asyncio.gather(
                _check("redis", container.redis.ping()),
                _check("database", _ping_database(container)),
            )
        )
        down = [name for name, state in results.items() if state != "ok"]
        if down:
            raise ApiError(503, f"Service unavailable: {', '.join(down)} down")
        return Readiness(status="ready", checks=results, projections=await _lag(container))


async def _lag(container: Container) -> dict[str, Any]:
    """Per projection and shard: entries not yet applied and the age of the oldest (ms)."""
    try:
        lag = await asyncio.wait_for(
            projection_lag(container.redis, container.engine, container.settings.stream_shards),
            CHECK_TIMEOUT_SECONDS,
        )
    except Exception as exc:  # lag is information; failing to measure it is not unreadiness
        return {"error": f"lag unavailable: {type(exc).__name__}"}
    return as_json(lag)
