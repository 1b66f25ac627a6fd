"""Fixtures for API tests on a fake clock.

``clock`` starts at ``session_samples.START`` and moves only when a test moves it;
``api_on_clock`` is the API served on that clock (``session_samples.clocked_client``).
``clocked`` is the API and its fake clock, set an hour ago.
``projector`` keeps shard 0 projected in the background, as a worker would (read-your-writes
tests).
``two_apis`` is two real ``medio api`` processes on this run's stores, a client for each.
``fresh_rate_counts`` forgets the rate-limit counts left by earlier tests of the same window.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from session_samples import START, clocked_client, forget_rate_counts

from adapters.container import Container
from adapters.settings import Settings
from domain.clock import FakeClock
from medio.embedded import free_port
from projections.runtime import run_projector
from services.container import build_container
from tests.processes import start_medio, stop_all, wait_until


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def api_on_clock(
    settings: Settings, clock: FakeClock
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with clocked_client(settings, clock) as (client, _settings):
        yield client


@pytest.fixture
async def clocked(settings: Settings) -> AsyncIterator[tuple[AsyncTestClient[Litestar], FakeClock]]:
    """A client whose server clock moves only when the test says so."""
    clock = FakeClock(datetime.now(UTC) - timedelta(hours=1))
    async with clocked_client(settings, clock) as (client, _settings):
        yield client, clock


@pytest.fixture
def projector(settings: Settings) -> Iterator[None]:
    """The shards' projectors on a thread and event loop of its own, as a worker process would
    run it (the test client may hold the test's loop while a request waits)."""
    stop = threading.Event()

    async def project() -> None:
        container = build_container(settings)
        try:
            while not stop.is_set():  # every shard of the run (4 in a cluster run)
                await asyncio.gather(
                    *(
                        run_projector(container, shard, seconds=0.5, wait_seconds=5)
                        for shard in range(settings.stream_shards)
                    )
                )
        finally:
            await container.close()

    thread = threading.Thread(target=asyncio.run, args=(project(),), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


@pytest.fixture
async def fresh_rate_counts(container: Container) -> None:
    await forget_rate_counts(container.redis)


def _healthy(port: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200


@pytest.fixture
def two_apis(test_env: dict[str, str]) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """``medio api`` twice on this run's database and Redis (``test_env`` put them in the env)."""
    ports = [free_port(), free_port()]
    processes = [
        start_medio(os.environ, "api", "--port", str(port), "--workers", "1") for port in ports
    ]
    try:
        for port in ports:
            wait_until(lambda port=port: _healthy(port), f"medio api on {port}", 30, pause=0.1)
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", timeout=10) as first,
            httpx.Client(base_url=f"http://127.0.0.1:{ports[1]}", timeout=10) as second,
        ):
            yield first, second
    finally:
        stop_all(processes, 15)
