"""The pipeline's one multiplexed connection (``adapters.redis_connection``) on real Redis
servers of the tests' own: the client's settings (password, database, decoded replies), a
crash with a command in flight, a cancelled caller, garbage on the wire, and new event loops."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.autopipeline import AutoPipeline
from adapters.settings import Settings
from medio.embedded import free_port
from tests.integration.private_stores import PrivateRedis

# Keeps Redis busy for ARGV[1] seconds: a command still in flight when the server crashes.
BUSY = """
local started = tonumber(redis.call('TIME')[1])
while tonumber(redis.call('TIME')[1]) - started < tonumber(ARGV[1]) do end
return 1
"""


@contextlib.contextmanager
def redis_with_password(password: str) -> Iterator[int]:
    """A private ``redis-server`` that asks for ``password``; its port."""
    port = free_port()
    server = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--requirepass", password),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, password=password, socket_connect_timeout=0.5)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "private redis-server did not start"
                time.sleep(0.05)
        yield port
    finally:
        client.close()
        server.kill()
        server.wait()


async def test_the_url_password_and_database_are_used() -> None:
    with redis_with_password("s3cret") as port:
        pipeline = AutoPipeline(Redis.from_url(f"redis://:s3cret@127.0.0.1:{port}/3"), timeout=5)
        assert await pipeline.execute("SET", "medio:test:mux", "on db 3") == b"OK"
        assert b" db=3 " in await pipeline.execute("CLIENT", "INFO")
        await pipeline.close()
        direct = redis.Redis(port=port, password="s3cret", db=3)
        assert direct.get("medio:test:mux") == b"on db 3"
        assert redis.Redis(port=port, password="s3cret", db=0).get("medio:test:mux") is None
        direct.close()


async def test_a_wrong_password_is_the_callers_error_not_a_hang() -> None:
    with redis_with_password("s3cret") as port:
        url = f"redis://:wrong@127.0.0.1:{port}/0"
        pipeline = AutoPipeline(Redis.from_url(url, retry=Retry(NoBackoff(), 0)), timeout=5)
        with pytest.raises(AuthenticationError):
            await asyncio.wait_for(pipeline.execute("PING"), 5)
        await pipeline.close()


async def test_a_client_that_decodes_gets_text(settings: Settings) -> None:
    pipeline = AutoPipeline(Redis.from_url(settings.redis_url, decode_responses=True), timeout=5)
    try:
        await pipeline.execute("SET", "medio:test:mux:text", "héllo")
        assert await pipeline.execute("GET", "medio:test:mux:text") == "héllo"
        assert await pipeline.execute("INCR", "medio:test:mux:n") >= 1
        await pipeline.execute("DEL", "medio:test:mux:text", "medio:test:mux:n")
    finally:
        await pipeline.close()


async def test_a_crash_fails_the_commands_in_flight_and_the_next_ones_reconnect(
    tmp_path: Path,
) -> None:
    """Replies lost with the connection are not guessed at: their callers get the error and
    nothing is sent again; once Redis is back the next batch runs on a new connection."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        client = Redis.from_url(server.url, retry=Retry(NoBackoff(), 0))
        pipeline = AutoPipeline(client, timeout=10)
        assert await pipeline.execute("SET", "k", "before") == b"OK"
        in_flight = asyncio.gather(
            pipeline.execute("EVAL", BUSY, 0, 2),
            pipeline.execute("SET", "k", "during"),
            return_exceptions=True,
        )
        await asyncio.sleep(0.3)
        server.crash()
        results = await asyncio.wait_for(in_flight, 5)
        assert all(isinstance(result, RedisConnectionError) for result in results)
        with pytest.raises(RedisConnectionError):
            await pipeline.execute("PING")  # down: no retries configured, the caller learns it
        server.start()
        assert await pipeline.execute("PING") == b"PONG"
        assert await pipeline.execute("GET", "k") is None  # a new server run, nothing resent
        await pipeline.close()
    finally:
        server.stop()


async def test_a_cancelled_caller_does_not_shift_the_replies_of_others(
    settings: Settings,
) -> None:
    pipeline = AutoPipeline(Redis.from_url(settings.redis_url), timeout=5)
    try:
        gone = asyncio.ensure_future(pipeline.execute("ECHO", "not read"))
        mine = asyncio.ensure_future(pipeline.execute("ECHO", "mine"))
        await asyncio.sleep(0)  # both queued
        await asyncio.sleep(0)  # and written, their replies not yet read
        gone.cancel()
        assert await mine == b"mine"
        assert gone.cancelled()
        replies = await asyncio.gather(*(pipeline.execute("ECHO", str(i)) for i in range(50)))
        assert replies == [str(i).encode() for i in range(50)]
    finally:
        await pipeline.close()


async def test_an_argument_redis_cannot_take_fails_only_its_caller(settings: Settings) -> None:
    pipeline = AutoPipeline(Redis.from_url(settings.redis_url), timeout=5)
    try:
        results = await asyncio.gather(
            pipeline.execute("ECHO", "before"),
            pipeline.execute("ECHO", {"not": "an argument"}),
            pipeline.execute("ECHO", "after"),
            pipeline.execute("INCR", "medio:test:mux:not-a-number", "extra"),
            return_exceptions=True,
        )
        assert results[0] == b"before"
        assert isinstance(results[1], Exception) and not isinstance(results[1], ResponseError)
        assert results[2] == b"after"
        assert isinstance(results[3], ResponseError)
    finally:
        await pipeline.close()


async def test_garbage_on_the_wire_fails_the_callers_and_closes_the_connection() -> None:
    async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"?this is not RESP\r\n")
        await writer.drain()

    server = await asyncio.start_server(answer_garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipeline = AutoPipeline(Redis(port=port, retry=Retry(NoBackoff(), 0)), timeout=5)
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(pipeline.execute("PING"), 5)
    await pipeline.close()
    server.close()
    await server.wait_closed()


def test_each_event_loop_gets_a_connection_of_its_own(settings: Settings) -> None:
    """A worker runs jobs in event loops of their own: the pipeline connects again in each
    rather than writing on a transport of a closed loop."""
    pipeline = AutoPipeline(Redis.from_url(settings.redis_url), timeout=5)

    async def client_id() -> int:
        return int(await asyncio.wait_for(pipeline.execute("CLIENT", "ID"), 5))

    first = asyncio.run(client_id())
    second = asyncio.run(client_id())
    assert first != second


def test_a_new_event_loop_gets_the_deadline_too() -> None:
    """The deadline's timer belonged to the loop that armed it: on a new loop's connection a
    Redis that stops answering still fails its callers at the deadline, not never."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    kept: list[socket.socket] = []

    def serve() -> None:
        first, _ = listener.accept()
        first.recv(100)
        first.sendall(b"+PONG\r\n")  # the first connection is answered
        kept.append(first)
        second, _ = listener.accept()
        kept.append(second)  # the second never is

    threading.Thread(target=serve, daemon=True).start()
    pipeline = AutoPipeline(Redis(port=port, retry=Retry(NoBackoff(), 0)), timeout=0.3)

    async def ping() -> Any:
        return await asyncio.wait_for(pipeline.execute("PING"), 5)

    assert asyncio.run(ping()) == b"PONG"
    with pytest.raises(RedisTimeoutError):
        asyncio.run(ping())
    for connection in kept:
        connection.close()
    listener.close()
