"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get
from litestar.datastructures import State

from api.deps import ContainerDep
from api.errors import ApiError
from api.route_facts import facts
from services.container import Container
from services.health import LagCache, check_stores


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]
    projections: dict[str, Any] = msgspec.field(default_factory=dict)


class HealthController(Controller):
    """``/health`` says the process is alive; ``/ready`` that its stores answer."""

    include_in_schema = True

    @get("/health", summary="Liveness")
    async def health(self) -> Health:
        return Health(status="ok")

    @get(
        "/ready",
        summary="Readiness: Redis and the database answer; projection lag",
        opt=facts(stores=True),
    )
    async def ready(self, container: ContainerDep, state: State) -> Readiness:
        results = await check_stores(container)
        down = [name for name, state in results.items() if state != "ok"]
        if down:
            raise ApiError(503, f"Service unavailable: {', '.join(down)} down")
        return Readiness(status="ready", checks=results, projections=await _lag(container, state))


async def _lag(container: Container, state: State) -> dict[str, Any]:
    cache: LagCache | None = getattr(state, "lag_cache", None)
    if cache is None:
        cache = state.lag_cache = LagCache()  # one per app (per process)
    return await cache.get(container)
