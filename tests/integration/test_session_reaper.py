"""The reaper as RQ runs it: one scheduled job per slot, and the job ending silent sessions."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry
from session_samples import new_owner, new_profile, new_video

from adapters.session_keys import session_key
from adapters.settings import Settings
from domain.clock import FakeClock
from domain.sessions import SessionState
from services import sessions
from services.container import build_container
from workers.queues import MAINTENANCE, rq_connection
from workers.reaper import REAPER_JOB, reaper_interval, schedule_reaper


def test_every_worker_schedules_the_same_single_job_for_the_next_slot(settings: Settings) -> None:
    connection = rq_connection(settings)
    registry = ScheduledJobRegistry(MAINTENANCE, connection=connection)
    now = 1_900_000_000.0
    try:
        ids = {schedule_reaper(settings, connection, now=now + i / 10) for i in range(3)}
        (job_id,) = ids
        interval = reaper_interval(settings)
        assert job_id == f"medio-reaper-{int(now // interval) + 1}"
        assert registry.get_job_ids().count(job_id) == 1
        run_at = registry.get_scheduled_time(job_id)
        assert run_at == datetime.fromtimestamp((int(now // interval) + 1) * interval, UTC)
    finally:
        for stale in [j for j in registry.get_job_ids() if j.startswith("medio-reaper-")]:
            registry.remove(stale, delete_job=True)


async def _silent_session(settings: Settings) -> int:
    """A session started ten minutes ago on a fake clock, never beaten since."""
    clock = FakeClock(datetime.now(UTC) - timedelta(minutes=10))
    container = build_container(settings, clock=clock)
    try:
        owner = await new_owner(container)
        profile = await new_profile(container, owner)
        video = await new_video(container, owner)
        started = await sessions.start_session(
            container, profile, video, public=False, actor="test"
        )
        return started.state.session_id
    finally:
        await container.close()


async def _state(settings: Settings, session_id: int) -> SessionState:
    container = build_container(settings)
    try:
        shard = await sessions.session_shard(container, session_id)
        assert shard is not None
        raw = await container.redis.get(session_key(session_id, shard))
        assert raw is not None
        return msgspec.json.decode(raw, type=SessionState)
    finally:
        await container.close()


def test_the_rq_job_ends_silent_sessions_and_schedules_the_next_run(settings: Settings) -> None:
    session_id = asyncio.run(_silent_session(settings))
    connection = rq_connection(settings)
    # A queue of its own: on the shared maintenance queue the burst worker also ran periodic
    # jobs that other tests' workers queue, and the test failed once with this job's record
    # gone when its status was read.
    queue = Queue(f"test-reaper-{uuid.uuid4().hex}", connection=connection)
    registry = ScheduledJobRegistry(MAINTENANCE, connection=connection)
    try:
        job = queue.enqueue(REAPER_JOB, result_ttl=600)
        SimpleWorker([queue], connection=connection).work(burst=True)
        assert job.get_status(refresh=True) == "finished", job.latest_result()
        assert job.return_value() >= 1
        state = asyncio.run(_state(settings, session_id))
        assert (state.end_reason, state.ended_at) == ("timeout", state.started_at)
        assert any(j.startswith("medio-reaper-") for j in registry.get_job_ids())
    finally:
        for stale in [j for j in registry.get_job_ids() if j.startswith("medio-reaper-")]:
            registry.remove(stale, delete_job=True)
