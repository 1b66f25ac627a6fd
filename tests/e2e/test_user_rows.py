"""A user row is created on first sight of a ``sub``, on every kind of route."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters.container import Container
from adapters.settings import Settings
from adapters.tables import users
from api.auth import create_token
from services.users import UserDirectory


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


BAD_SUBS = ["user\x00nul", "user\ud800surrogate", "user\x1bescape"]


@pytest.mark.parametrize("sub", BAD_SUBS, ids=["nul", "lone-surrogate", "control"])
async def test_a_sub_that_cannot_be_stored_is_an_invalid_token(
    client: AsyncTestClient[Litestar], settings: Settings, sub: str
) -> None:
    """NUL or a lone surrogate in ``sub`` was a 500 on every database route (issue 15, L11)."""
    headers = {"Authorization": f"Bearer {create_token(settings, sub)}"}
    for response in (
        await client.get("/api/profiles", headers=headers),
        await client.post(
            "/api/progress", json={"clerkId": "x", "tmdbId": "1", "currentTime": 1}, headers=headers
        ),
    ):
        assert response.status_code == 401


async def test_one_bad_subject_does_not_stop_other_users_rows(container: Container) -> None:
    """The background registration upserts new users in batches; one row the database
    refuses used to fail every batch it was in, for good (0 of 60 new users got a row)."""
    directory = UserDirectory(container)
    good = [f"user_batch_{n}_{secrets.token_hex(3)}" for n in range(20)]
    directory.note("user\x00poison")
    for sub in good:
        directory.note(sub)
    for _ in range(200):
        if all([await _user_rows(container, sub) for sub in good]):
            break
        await asyncio.sleep(0.02)
    assert [await _user_rows(container, sub) for sub in good] == [1] * 20


async def test_the_known_users_of_a_process_are_bounded(container: Container) -> None:
    """Every sub ever seen was kept in memory for good (issue 15, L16): now the most recent
    ``KNOWN_USERS`` only, and one forgotten is looked up again, with the same id."""
    directory = UserDirectory(container)
    directory.KNOWN_USERS = 5
    subs = [f"user_lru_{n}_{secrets.token_hex(3)}" for n in range(12)]
    ids = [await directory.user_id(sub) for sub in subs]
    assert len(directory._ids) == 5
    assert await directory.user_id(subs[0]) == ids[0]
    assert len(directory._ids) == 5
