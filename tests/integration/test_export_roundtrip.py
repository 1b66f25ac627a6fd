"""The analysts' round trip: export -> import into an empty archive -> replay -> same projections.

Stores of its own (``projector_env.isolated_stack``): the source deployment gets events through
the event log and its projectors; then Redis is emptied and the target deployment (a fresh
database on that empty Redis) learns everything from the exported file alone. Every command
runs as an operator would type it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner, Result
from history_samples import archive_of_its_own
from projector_env import isolated_stack, projection_snapshot

from adapters.container import Container
from adapters.eventlog import stream_name
from adapters.settings import Settings
from adapters.tables import events
from bench.workload import append_all, realistic_events
from medio.cli import main
from projections.archive import Archive
from projections.runtime import project_pending
from services.container import build_container
from tests import scratch

SHARDS = 2
EVENTS = 1500


@pytest.fixture(scope="module")
def source() -> Iterator[Settings]:
    with isolated_stack(stream_shards=SHARDS) as stack:
        yield stack.settings


@pytest.fixture(scope="module")
def target(source: Settings) -> Iterator[Settings]:
    """A fresh database beside the source's; it shares the (by then emptied) Redis index."""
    with archive_of_its_own(source) as own:
        yield own


async def _medio(settings: Settings, *args: str) -> Result:
    """``medio ...`` against ``settings``' stores (in a thread: the CLI runs its own loop)."""
    env = {
        "MEDIO_DATABASE_URL": settings.database_url,
        "MEDIO_REDIS_URL": settings.redis_url,
        "MEDIO_STREAM_SHARDS": str(settings.stream_shards),
    }
    result = await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


async def _empty_redis(container: Container) -> None:
    claim = await container.redis.get(scratch.CLAIM_KEY)
    await container.redis.flushdb()
    await container.redis.set(scratch.CLAIM_KEY, claim or "history", ex=3600)
    await container.redis.set(scratch.OWNER_KEY, "medio-tests")


async def _append_v1_progress_save(container: Container) -> None:
    """A save as the Express era wrote it (v1), so the round trip carries an upcast event too."""
    body = {
        "type": "progress.saved",
        "occurred_at": "2025-07-30T09:23:45.678Z",
        "actor": "user_express",
        "clerk_id": "user_express",
        "tmdb_id": "550",
        "current_time": 3600,
    }
    fields = {"t": "progress.saved", "v": 1, "d": msgspec.json.encode(body)}
    await container.redis.xadd(stream_name(0), fields)  # type: ignore[arg-type]


async def test_export_import_replay_reproduces_every_projection(
    source: Settings, target: Settings, tmp_path: Path
) -> None:
    origin = build_container(source)
    copy = build_container(target)
    try:
        await append_all(origin.redis, SHARDS, realistic_events(EVENTS, seed=5))
        await _append_v1_progress_save(origin)
        assert await project_pending(origin) == EVENTS + 1
        original = await projection_snapshot(origin)
        assert original["stats"] and original["resume"]  # something to compare
        export = tmp_path / "history.jsonl"

        await _medio(source, "events", "export", "--format", "jsonl", "-o", str(export))
        archived = await _archive(origin)
        await _empty_redis(origin)
        assert await projection_snapshot(copy) != original
        imported = await _medio(target, "events", "import", str(export))
        assert f"imported {EVENTS + 1:,} events" in imported.output
        await _medio(target, "replay")

        assert await projection_snapshot(copy) == original
        assert await _archive(copy) == archived
        verified = await _medio(target, "replay", "--verify")
        assert "no differences" in verified.output
    finally:
        await origin.close()
        await copy.close()


async def _archive(container: Container) -> list[tuple[Any, ...]]:
    """The archive as readers see it: sealed bodies are sealed anew by the import."""
    async with container.engine.connect() as conn:
        return (await Archive().dump(conn))[events.name]
