"""The session store on real Redis: atomic state + events, no double counting, limit, reaper."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import msgspec
import pytest
from session_samples import NOW, new_owner, new_profile, new_video, session_events

from adapters.container import Container
from adapters.session_keys import active_index, session_key
from adapters.settings import Settings
from domain.catalog import Profile
from domain.clock import FakeClock
from domain.events import SessionEnded, SessionHeartbeat, SessionStarted
from domain.policy import Policy
from domain.sessions import SessionState
from services import sessions
from services.container import build_container
from services.policy import decode_policy, encode_policy, stored_policy
from services.sessions import Caller
from workers.reaper import reap_silent_sessions

Drain = Callable[[], Awaitable[int]]


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def store(settings: Settings, clock: FakeClock) -> AsyncIterator[Container]:
    """A container on a fake clock (max gap 90 s, timeout 180 s)."""
    tuned = msgspec.structs.replace(
        settings, heartbeat_max_gap_seconds=90, session_timeout_seconds=180
    )
    built = build_container(tuned, clock=clock)
    yield built
    await built.close()


async def _started(store: Container, limit: int = 60) -> tuple[sessions.Started, Caller]:
    owner = await new_owner(store)
    profile = await new_profile(store, owner, daily_limit_minutes=limit)
    video = await new_video(store, owner)
    started = await sessions.start_session(store, profile, video, public=False, actor="parent")
    return started, Caller(user_id=owner, actor="parent")


async def _key(store: Container, session_id: int) -> str:
    shard = await sessions.session_shard(store, session_id)
    assert shard is not None
    return session_key(session_id, shard)


async def _indexed(store: Container, session_id: int) -> float | None:
    """The session's score in its shard's active index."""
    state = await _state(store, session_id)
    index = active_index(store.events.shard_of(str(state.profile_id)))
    return await store.redis.zscore(index, str(session_id))


async def _state(store: Container, session_id: int) -> SessionState:
    raw = await store.redis.get(await _key(store, session_id))
    assert raw is not None
    return msgspec.json.decode(raw, type=SessionState)


async def test_start_writes_state_index_and_event_together(store: Container) -> None:
    started, _caller = await _started(store)
    session_id = started.state.session_id
    assert (await _state(store, session_id)).started_at == NOW
    shard = store.events.shard_of(str(started.state.profile_id))
    assert await store.redis.zscore(active_index(shard), str(session_id)) == NOW.timestamp()
    (event,) = await session_events(store.redis, session_id)
    assert isinstance(event, SessionStarted)
    assert (event.local_date, event.timezone) == ("2026-03-04", "Asia/Tokyo")
    assert started.session_token.startswith("sess_")
    assert (
        started.session_token not in (await store.redis.get(await _key(store, session_id))).decode()
    )


async def test_concurrent_heartbeats_never_count_time_twice(
    store: Container, clock: FakeClock
) -> None:
    started, caller = await _started(store)
    session_id = started.state.session_id
    clock.advance(60)
    beats = await asyncio.gather(
        *(sessions.heartbeat(store, session_id, caller, None) for _ in range(40))
    )
    assert all(beat.status == "active" for beat in beats)
    assert (await _state(store, session_id)).watched_ms == 60_000
    events = await session_events(store.redis, session_id)
    accruing = [e for e in events if isinstance(e, SessionHeartbeat) and e.shares]
    assert len(accruing) == 1
    assert accruing[0].shares[0].seconds == 60.0


async def test_concurrent_heartbeats_on_the_wall_clock_stay_within_elapsed_time(
    settings: Settings,
) -> None:
    built = build_container(settings)
    try:
        started, caller = await _started(built)
        session_id = started.state.session_id
        for _ in range(5):
            await asyncio.gather(
                *(sessions.heartbeat(built, session_id, caller, None) for _ in range(10))
            )
        state = await _state(built, session_id)
        assert state.last_heartbeat is not None
        elapsed_ms = (state.last_heartbeat - state.started_at) / timedelta(milliseconds=1)
        events = await session_events(built.redis, session_id)
        shares_ms = sum(
            round(s.seconds * 1000)
            for e in events
            if isinstance(e, SessionHeartbeat)
            for s in e.shares
        )
        assert state.watched_ms == shares_ms <= elapsed_ms + 1
    finally:
        await built.close()


async def test_heartbeat_and_end_after_end_are_refused(store: Container, clock: FakeClock) -> None:
    started, caller = await _started(store)
    session_id = started.state.session_id
    clock.advance(30)
    ended = await sessions.end_session(store, session_id, caller)
    assert (ended.end_reason, ended.ended_at, ended.watched_ms) == ("ended", clock.now(), 30_000)
    assert await _indexed(store, session_id) is None
    with pytest.raises(sessions.SessionOver):
        await sessions.heartbeat(store, session_id, caller, None)
    with pytest.raises(sessions.SessionOver):
        await sessions.end_session(store, session_id, caller)
    kinds = [type(e) for e in await session_events(store.redis, session_id)]
    assert kinds == [SessionStarted, SessionEnded]


async def test_commands_survive_a_script_flush(store: Container, clock: FakeClock) -> None:
    """Commands run their compare-and-append by EVALSHA; a server that lost the script (a
    restart, ``SCRIPT FLUSH``) gets its body again, and nothing is decided twice."""
    started, caller = await _started(store)
    session_id = started.state.session_id
    await store.redis.script_flush()
    clock.advance(30)
    beat = await sessions.heartbeat(store, session_id, caller, 12.0)
    assert (beat.status, beat.state.watched_ms, beat.state.position) == ("active", 30_000, 12.0)
    kinds = [type(e) for e in await session_events(store.redis, session_id)]
    assert kinds == [SessionStarted, SessionHeartbeat]


async def test_someone_elses_session_is_not_found(store: Container) -> None:
    started, _caller = await _started(store)
    session_id = started.state.session_id
    stranger = Caller(user_id=await new_owner(store))
    with pytest.raises(sessions.SessionNotFound):
        await sessions.heartbeat(store, session_id, stranger, None)
    with pytest.raises(sessions.SessionNotFound):
        await sessions.get_session(store, session_id, Caller(token_hash="nope"))
    with pytest.raises(sessions.SessionNotFound):
        await sessions.end_session(store, 10**15, stranger)


async def test_session_token_holder_may_beat(store: Container, clock: FakeClock) -> None:
    started, _caller = await _started(store)
    holder = Caller(token_hash=sessions.hash_token(started.session_token))
    clock.advance(45)
    beat = await sessions.heartbeat(store, started.state.session_id, holder, 12.5)
    assert (beat.status, beat.state.position, beat.state.watched_ms) == ("active", 12.5, 45_000)


async def _watch(store: Container, clock: FakeClock, profile: Profile, seconds: int) -> None:
    """Another device watches ``seconds`` (beating every minute) and ends its session."""
    video = await new_video(store, profile.user_id)
    started = await sessions.start_session(store, profile, video, public=False, actor="p")
    caller = Caller(user_id=profile.user_id)
    for step in [60] * (seconds // 60) + ([seconds % 60] if seconds % 60 else []):
        clock.advance(step)
        beat = await sessions.heartbeat(store, started.state.session_id, caller, None)
        if beat.status != "active":  # the day's budget ran out on this beat
            return
    await sessions.end_session(store, started.state.session_id, caller)


async def test_start_is_refused_when_the_projected_day_is_used_up(
    store: Container, clock: FakeClock, drain: Drain
) -> None:
    owner = await new_owner(store)
    profile = await new_profile(store, owner, daily_limit_minutes=2, name="Sarah")
    await _watch(store, clock, profile, 150)
    await drain()
    video = await new_video(store, owner)
    with pytest.raises(sessions.StartRefused) as refused:
        await sessions.start_session(store, profile, video, public=False, actor="p")
    assert (refused.value.limit_minutes, refused.value.watched_minutes) == (2, 2)
    assert refused.value.profile_name == "Sarah"


async def test_heartbeat_reaching_the_limit_ends_the_session(
    store: Container, clock: FakeClock, drain: Drain
) -> None:
    owner = await new_owner(store)
    profile = await new_profile(store, owner, daily_limit_minutes=10)
    await _watch(store, clock, profile, 9 * 60 + 30)  # 9.5 minutes on another device
    await drain()
    video = await new_video(store, owner)
    started = await sessions.start_session(store, profile, video, public=False, actor="p")
    assert started.watched_today_ms == 570_000 and started.remaining_minutes == 1
    caller = Caller(user_id=owner)
    session_id = started.state.session_id
    clock.advance(20)
    beat = await sessions.heartbeat(store, session_id, caller, None)
    assert (beat.status, beat.remaining_minutes) == ("active", 1)
    await drain()
    clock.advance(10)
    beat = await sessions.heartbeat(store, session_id, caller, None)
    assert (beat.status, beat.remaining_minutes) == ("limit_reached", 0)
    assert beat.state.end_reason == "daily_limit"
    assert await _indexed(store, session_id) is None
    clock.advance(30)
    with pytest.raises(sessions.SessionOver):
        await sessions.heartbeat(store, session_id, caller, None)


async def test_reaper_ends_silent_sessions_at_their_last_heartbeat(
    store: Container, clock: FakeClock
) -> None:
    silent, caller = await _started(store)
    lively, lively_caller = await _started(store)
    clock.advance(60)
    await sessions.heartbeat(store, silent.state.session_id, caller, None)
    await sessions.heartbeat(store, lively.state.session_id, lively_caller, None)
    last_beat = clock.now()
    clock.advance(120)
    await sessions.heartbeat(store, lively.state.session_id, lively_caller, None)
    clock.advance(60)  # silent: 180 s without a beat; lively: 60 s
    ended = await reap_silent_sessions(store)
    assert silent.state.session_id in ended
    assert lively.state.session_id not in ended
    state = await _state(store, silent.state.session_id)
    assert (state.end_reason, state.ended_at, state.watched_ms) == ("timeout", last_beat, 60_000)
    event = (await session_events(store.redis, silent.state.session_id))[-1]
    assert isinstance(event, SessionEnded)
    assert (event.reason, event.ended_at, event.shares) == ("timeout", last_beat, ())
    assert await reap_silent_sessions(store) == []  # nothing left to reap
    with pytest.raises(sessions.SessionOver):
        await sessions.heartbeat(store, silent.state.session_id, caller, None)


async def test_reaper_and_a_late_heartbeat_end_a_silent_session_once(
    store: Container, clock: FakeClock
) -> None:
    started, caller = await _started(store)
    session_id = started.state.session_id
    clock.advance(400)
    late, reaped = await asyncio.gather(
        sessions.heartbeat(store, session_id, caller, None),
        reap_silent_sessions(store),
        return_exceptions=True,
    )
    assert isinstance(late, sessions.SessionOver)
    assert isinstance(reaped, list)
    ends = [e for e in await session_events(store.redis, session_id) if isinstance(e, SessionEnded)]
    assert len(ends) == 1 and ends[0].ended_at == NOW


async def test_a_stale_cached_route_is_refreshed_from_the_state(
    store: Container, clock: FakeClock
) -> None:
    started, caller = await _started(store)
    session_id = started.state.session_id
    sessions._routes[session_id] = (started.state.profile_id + 1, "UTC")  # e.g. Redis reset
    clock.advance(30)
    beat = await sessions.heartbeat(store, session_id, caller, None)
    assert beat.state.watched_ms == 30_000
    assert sessions._routes[session_id] == (started.state.profile_id, "Asia/Tokyo")
    (_, event) = await session_events(store.redis, session_id)
    assert isinstance(event, SessionHeartbeat) and event.shares[0].local_date == "2026-03-04"


def test_a_stored_policy_is_decoded_once_per_value() -> None:
    # The heartbeat's policy is remembered by the stored value itself: the same value gives
    # the same object (so its days are worked out once), a changed value its own policy.
    thirty = encode_policy(Policy(daily_limit_minutes=30))
    forty_five = encode_policy(Policy(daily_limit_minutes=45, locked=True))
    assert stored_policy(thirty) is stored_policy(thirty)
    assert stored_policy(thirty) == decode_policy(thirty)
    changed = stored_policy(forty_five)
    assert changed is not None and changed.daily_limit_minutes == 45 and changed.locked
    assert stored_policy(None) is None and stored_policy(b"") is None
