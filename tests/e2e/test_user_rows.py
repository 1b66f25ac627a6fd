"""A user row is created on first sight of a ``sub``, on every kind of route."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters.container import Container
from adapters.settings import Settings
from adapters.tables import users
from api.auth import create_token
from services.users import UserDirectory, announce_erased, follow_erasures

NOW = datetime.now(UTC)


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


async def _user_id(container: Container, sub: str) -> int | None:
    async with container.engine.connect() as conn:
        found = await conn.scalar(sa.select(users.c.id).where(users.c.external_id == sub))
    return None if found is None else int(found)


async def _erase_unannounced(container: Container, sub: str) -> int:
    """Delete ``sub``'s user row as an erasure on another process whose notice never came."""
    old = await _user_id(container, sub)
    assert old is not None
    async with container.engine.begin() as conn:
        await conn.execute(users.delete().where(users.c.id == old))
    return old


async def test_a_write_with_an_erased_users_id_makes_a_new_row_and_succeeds(
    client: AsyncTestClient[Litestar], container: Container, auth: Callable[..., dict[str, str]]
) -> None:
    """A process that knew a family's user id still used it after another process erased the
    family: the write failed on the foreign key, a 500. Now it is retried once with a new row."""
    sub = f"user_erased_elsewhere_{secrets.token_hex(3)}"
    headers = auth(sub)
    assert (await client.get("/api/profiles", headers=headers)).status_code == 200  # id known
    old = await _erase_unannounced(container, sub)

    created = await client.post("/api/profiles", json={"name": "Ada", "age": 6}, headers=headers)
    assert created.status_code == 201, created.text
    new = await _user_id(container, sub)
    assert new is not None and new != old
    listed = (await client.get("/api/profiles", headers=headers)).json()["profiles"]
    assert [p["id"] for p in listed] == [created.json()["id"]]

    await _erase_unannounced(container, sub)
    video = {"title": "Ducks", "url": "https://x.test/d.mp4"}
    answer = await client.post("/api/videos", json=video, headers=headers)
    assert answer.status_code == 201, answer.text
    assert await _user_id(container, sub) not in (None, old, new)


async def test_a_write_refused_for_its_own_data_is_not_retried(container: Container) -> None:
    directory = UserDirectory(container)
    sub = f"user_refused_write_{secrets.token_hex(3)}"
    user_id = await directory.user_id(sub)
    calls: list[int] = []

    async def refused(owner: int) -> None:
        calls.append(owner)
        async with container.engine.begin() as conn:  # a duplicate key: the data's own fault
            await conn.execute(users.insert().values(id=owner, external_id=sub, created_at=NOW))

    with pytest.raises(sa.exc.IntegrityError):
        await directory.write_as(sub, user_id, refused)
    assert calls == [user_id]
    assert await directory.user_id(sub) == user_id


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(250):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within 5 s: {what}")


async def test_every_process_hears_erasures_and_forgets_all_on_reconnecting(
    container: Container, settings: Settings
) -> None:
    directory = UserDirectory(container)
    subs = [f"user_follow_{n}_{secrets.token_hex(3)}" for n in range(4)]
    await directory.user_id(subs[0])
    follower = asyncio.create_task(follow_erasures(container, directory))
    try:
        # Subscribed: the ids known before are forgotten (erasures may have been missed).
        await _until(lambda: not directory._ids, "forgotten once subscribed")
        for sub in subs[1:]:
            await directory.user_id(sub)
        await announce_erased(container, subs[1])
        await _until(lambda: subs[1] not in directory._ids, "the announced sub forgotten")
        assert list(directory._ids) == subs[2:]  # the others are kept

        # The subscription's connection dies (a Redis restart): every id is forgotten.
        assert settings.redis_url is not None
        index = int(settings.redis_url.rsplit("/", 1)[1])
        clients = await container.redis.client_list(_type="pubsub")
        mine = [c["id"] for c in clients if int(c["db"]) == index]
        assert mine
        for client_id in mine:
            await container.redis.client_kill_filter(_id=client_id)
        await _until(lambda: not directory._ids, "forgotten on reconnecting")

        # And notices are heard again on the new connection.
        await directory.user_id(subs[3])
        for _ in range(50):
            await announce_erased(container, subs[3])
            if subs[3] not in directory._ids:
                break
            await asyncio.sleep(0.1)
        assert subs[3] not in directory._ids
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower


async def test_shutdown_lets_a_registration_under_way_finish(container: Container) -> None:
    """A process stopping right after a ``sub`` was noted (an ingest request answered while
    its row is written in the background) finishes writing the row before it lets go of the
    database, rather than dropping the connection mid-transaction."""
    directory = UserDirectory(container)
    sub = f"user_noted_at_shutdown_{secrets.token_hex(4)}"
    directory.note(sub)
    await directory.close()
    assert await _user_rows(container, sub) == 1
    await directory.close()  # nothing under way: returns at once


async def test_shutdown_does_not_wait_past_its_bound_for_a_stuck_registration(
    container: Container,
) -> None:
    directory = UserDirectory(container)
    sub = f"user_stuck_at_shutdown_{secrets.token_hex(4)}"
    async with container.engine.begin() as conn:  # holds the row's insert until it commits
        await conn.execute(sa.insert(users).values(external_id=sub, created_at=NOW))
        directory.note(sub)
        await asyncio.sleep(0.2)  # the registration is now waiting on this transaction's lock
        started = asyncio.get_running_loop().time()
        await directory.close(seconds=0.3)
        assert asyncio.get_running_loop().time() - started < 2
        await conn.rollback()
    assert directory._registrar is not None and directory._registrar.done()
