"""Postgres goes away (connection refused) while events keep arriving; nothing is lost.

The projector reaches Postgres through a TCP proxy the test can switch off: connections are
cut and new ones refused. Appends go on meanwhile (they only need Redis). When the proxy is
back, the same running projector catches up by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import msgspec
import pytest
from projector_env import Stack, archived_count, isolated_stack

from adapters.container import Container
from adapters.eventlog import stream_name
from adapters.settings import Settings
from bench.workload import append_all, realistic_events
from medio.embedded import free_port
from projections.lag import projection_lag
from projections.locks import PAUSE_KEY
from projections.replay import verify
from projections.runtime import run_projector
from projections.streams import GROUP
from services.container import build_container


class PostgresSwitch:
    """A TCP proxy to Postgres that can refuse connections and cut the open ones."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.pipes):
            writer.transport.abort()
        await self.server.wait_closed()
        self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self.pipes |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self.pipes.discard(writer)


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[Stack]:  # after the run's environment is set
    with isolated_stack(projector_lock_ttl_seconds=2.0, projector_batch_size=500) as built:
        yield built


async def _until(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_projection_catches_up_with_nothing_lost_after_postgres_refused_connections(
    stack: Stack, iso: Container
) -> None:
    url = stack.settings.database_url
    assert url
    switch = PostgresSwitch(int(url.rsplit(":", 1)[1].split("/")[0]))
    await switch.up()
    proxied_url = url.replace(f":{switch.target_port}/", f":{switch.port}/")
    proxied = build_container(msgspec.structs.replace(stack.settings, database_url=proxied_url))
    projector = asyncio.create_task(run_projector(proxied, 0, seconds=60))
    try:
        items = list(realistic_events(6000, seed=31))
        await append_all(iso.redis, 1, items[:2000])
        await _until(lambda: _at_least(iso, 2000), timeout=20)

        await switch.down()
        await append_all(iso.redis, 1, items[2000:5000])  # appends do not need Postgres
        await asyncio.sleep(1.5)  # the projector keeps failing to connect meanwhile
        assert await archived_count(iso) == 2000
        lag = await projection_lag(iso.redis, iso.engine, 1)
        assert lag["archive"]["0"].behind == 3000
        assert lag["resume"]["0"].behind == 3000  # Redis waits for Postgres: one order

        await switch.up()
        await append_all(iso.redis, 1, items[5000:])
        await _until(lambda: _caught_up(iso), timeout=30)
    finally:
        await iso.redis.set(PAUSE_KEY, "test", px=10_000)  # how replay stops projectors
        await asyncio.wait_for(projector, timeout=15)
        await iso.redis.delete(PAUSE_KEY)
        await proxied.close()
        if switch.server is not None:
            await switch.down()
    assert await archived_count(iso) == 6000
    assert (await iso.redis.xpending(stream_name(0), GROUP))["pending"] == 0
    report = await verify(iso)
    assert report.differences == {}
    assert report.events == 6000


async def _at_least(container: Container, count: int) -> bool:
    return await archived_count(container) >= count


async def _caught_up(container: Container) -> bool:
    lag = await projection_lag(container.redis, container.engine, 1)
    return all(shard.behind == 0 for shards in lag.values() for shard in shards.values())
