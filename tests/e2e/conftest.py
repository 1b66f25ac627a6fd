"""Fixtures for API tests on a fake clock.

``clock`` starts at ``session_samples.START`` and moves only when a test moves it;
``api_on_clock`` is the API served on that clock (``session_samples.clocked_client``).
``clocked`` is the API and its fake clock, set an hour ago.
``two_apis`` is two real ``medio api`` processes on this run's stores, a client for each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from session_samples import START, clocked_client

from adapters.settings import Settings
from domain.clock import FakeClock
from medio.embedded import free_port


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


def _start_api(port: int) -> subprocess.Popen[bytes]:
    """``medio api`` on this run's database and Redis (``test_env`` put them in the env)."""
    return subprocess.Popen(
        [sys.executable, "-m", "medio.cli", "api", "--port", str(port), "--workers", "1"],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"medio api on {port} did not start")


@pytest.fixture
def two_apis(test_env: dict[str, str]) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    ports = [free_port(), free_port()]
    processes = [_start_api(port) for port in ports]
    try:
        for port in ports:
            _wait_ready(port)
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", timeout=10) as first,
            httpx.Client(base_url=f"http://127.0.0.1:{ports[1]}", timeout=10) as second,
        ):
            yield first, second
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(15)
