"""``medio migrate`` renames an older Medio's untagged command-side keys on one Redis, and a
session and policy written under the old names carry on under the new ones."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import msgspec
import pytest
from session_samples import NOW, new_owner, new_profile, new_video

from adapters.container import Container
from adapters.session_keys import (
    LEGACY_ACTIVE_INDEX,
    active_index,
    profile_index,
    session_key,
    shard_route_key,
)
from adapters.settings import Settings
from domain.clock import FakeClock
from projections.daily_limit import counter_key
from projections.key_migration import rename_legacy_keys
from services import policy, sessions
from services.container import build_container
from services.idempotency import record_key
from services.sessions import Caller

pytestmark = pytest.mark.skipif(
    os.environ.get("MEDIO_TEST_REDIS_CLUSTER") == "1",
    reason="the rename runs on one Redis (a cluster refuses RENAME across slots)",
)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Container]:
    clock = FakeClock(NOW)
    built = build_container(msgspec.structs.replace(settings, stream_shards=4), clock=clock)
    yield built
    await built.close()


async def test_old_key_names_are_renamed_once_and_a_running_session_carries_on(
    store: Container,
) -> None:
    redis = store.redis
    owner = await new_owner(store)
    profile = await new_profile(store, owner)
    video = await new_video(store, owner)
    started = await sessions.start_session(store, profile, video, public=False, actor="parent")
    await policy.set_lock(store, profile, None, "parent")
    await policy.lift_lock(store, profile, "parent")
    session_id, shard = started.state.session_id, store.events.shard_of(str(profile.id))
    day = "2026-03-04"
    digest = "ab" * 32
    # The layout of an older Medio: the same values under untagged names.
    legacy = {
        session_key(session_id, shard): f"medio:session:{session_id}",
        profile_index(profile.id, shard): f"medio:sessions:profile:{profile.id}",
        policy.policy_key(profile.id, shard): f"medio:policy:{profile.id}",
    }
    await redis.set(counter_key(profile.id, day, shard), 1234)
    legacy[counter_key(profile.id, day, shard)] = f"medio:daily-limit:{profile.id}:{day}"
    await redis.set(record_key(digest, shard), b"answer", ex=3600)
    legacy[record_key(digest, shard)] = f"medio:idem:{digest}"
    values = {new: await redis.dump(new) for new in legacy}
    for new, old in legacy.items():
        await redis.rename(new, old)
    score = await redis.zscore(active_index(shard), str(session_id))
    await redis.zrem(active_index(shard), str(session_id))
    await redis.zadd(LEGACY_ACTIVE_INDEX, {str(session_id): score})
    await redis.delete(shard_route_key("session", session_id))
    sessions._routes.clear()

    moved = await rename_legacy_keys(redis, 4)

    assert moved == len(legacy) + 1  # and the one active index, split
    for new, old in legacy.items():
        assert not await redis.exists(old)
        renamed = record_key(digest, 0) if new == record_key(digest, shard) else new
        assert await redis.dump(renamed) == values[new]
    assert await redis.ttl(record_key(digest, 0)) > 0
    assert await redis.zscore(active_index(shard), str(session_id)) == score
    assert not await redis.exists(LEGACY_ACTIVE_INDEX)
    assert await rename_legacy_keys(redis, 4) == 0  # nothing left to rename

    store.clock.advance(30)  # type: ignore[attr-defined]
    beat = await sessions.heartbeat(store, session_id, Caller(user_id=owner), None)
    assert (beat.status, beat.state.watched_ms) == ("active", 30_000)
