"""A user row is created on first sight of a ``sub``, on every kind of route."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from medio.bootstrap import Container
from medio.tables import users


async def _user_rows(container: Container, sub: str) -> int:
    async with container.engine.connect() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).where(users.c.external_id == sub))
    return int(count or 0)


async def test_first_save_progress_creates_the_user_row(
    client: AsyncTestClient[Litestar], container: Container, auth: Callable[..., dict[str, str]]
) -> None:
    sub = "user_first_sight_ingest"
    body = {"clerkId": sub, "tmdbId": "1", "currentTime": 5}
    responses = await asyncio.gather(
        *[client.post("/api/progress", json=body, headers=auth(sub)) for _ in range(5)]
    )
    assert {r.status_code for r in responses} == {204}
    for _ in range(100):  # the row is written in the background, off the ingest path
        if await _user_rows(container, sub):
            break
        await asyncio.sleep(0.02)
    assert await _user_rows(container, sub) == 1


async def test_concurrent_first_requests_create_one_user_row(
    client: AsyncTestClient[Litestar], container: Container, auth: Callable[..., dict[str, str]]
) -> None:
    sub = "user_first_sight_catalog"
    responses = await asyncio.gather(
        *[client.get("/api/profiles", headers=auth(sub)) for _ in range(8)]
    )
    assert {r.status_code for r in responses} == {200}
    assert await _user_rows(container, sub) == 1
