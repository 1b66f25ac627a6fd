"""Fixtures for API tests on a fake clock.

``clock`` starts at ``session_samples.START`` and moves only when a test moves it;
``api_on_clock`` is the API served on that clock (``session_samples.clocked_client``).
``clocked`` is the API and its fake clock, set an hour ago.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from session_samples import START, clocked_client

from adapters.settings import Settings
from domain.clock import FakeClock


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
