"""Fixtures for API tests on a fake clock.

``clock`` starts at ``session_samples.START`` and moves only when a test moves it;
``api_on_clock`` is the API served on that clock (``session_samples.clocked_client``).
``clocked`` is the API and its fake clock, set an hour ago.
``projector`` keeps shard 0 projected in the background, as a worker would (read-your-writes
tests).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from session_samples import START, clocked_client

from adapters.settings import Settings
from domain.clock import FakeClock
from projections.runtime import run_projector
from services.container import build_container


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
    """The shard's projector on a thread and event loop of its own, as a worker process would
    run it (the test client may hold the test's loop while a request waits)."""
    stop = threading.Event()

    async def project() -> None:
        container = build_container(settings)
        try:
            while not stop.is_set():
                await run_projector(container, 0, seconds=0.5, wait_seconds=5)
        finally:
            await container.close()

    thread = threading.Thread(target=asyncio.run, args=(project(),), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)
