"""The shared ingest pipeline on real Redis: one round trip for concurrent commands, each
caller gets its own reply or error, and a lost connection is not the next batch's problem."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.autopipeline import AutoPipeline
from adapters.container import Container
from adapters.scripts import Script
from medio.embedded import free_port

ECHO = Script("return ARGV[1]")


async def test_concurrent_commands_share_a_batch_and_keep_their_order(
    container: Container,
) -> None:
    pipeline = AutoPipeline(container.redis)
    key = "medio:test:autopipeline:list"
    await container.redis.delete(key)
    replies = await asyncio.gather(*(pipeline.execute("RPUSH", key, i) for i in range(200)))
    assert sorted(replies) == list(range(1, 201))
    assert await container.redis.lrange(key, 0, -1) == [str(i).encode() for i in range(200)]
    await container.redis.delete(key)


async def test_an_error_reply_fails_only_its_own_caller(container: Container) -> None:
    pipeline = AutoPipeline(container.redis)
    key = "medio:test:autopipeline:text"
    await container.redis.set(key, "not a number")
    results = await asyncio.gather(
        pipeline.execute("SET", "medio:test:autopipeline:a", "1"),
        pipeline.execute("INCR", key),
        pipeline.execute("EVALSHA", "0" * 40, 0),
        pipeline.execute("MGET", "medio:test:autopipeline:a", "medio:test:autopipeline:none"),
        return_exceptions=True,
    )
    assert results[0] is True or results[0] == b"OK"
    assert isinstance(results[1], ResponseError)
    assert isinstance(results[2], NoScriptError)
    assert results[3] == [b"1", None]
    await container.redis.delete(key, "medio:test:autopipeline:a")


async def test_scripts_run_by_sha_and_are_loaded_when_missing(container: Container) -> None:
    pipeline = AutoPipeline(container.redis)
    await container.redis.script_flush()
    assert await pipeline.run(ECHO, [], "first") == b"first"  # sent whole: Redis lacked it
    assert await container.redis.script_exists(ECHO.sha) == [True]
    assert await pipeline.run(ECHO, [], "second") == b"second"


async def test_a_script_on_its_own_round_trip_is_loaded_when_missing(
    container: Container,
) -> None:
    await container.redis.script_flush()
    assert await ECHO.run(container.redis, [], "first") == b"first"
    assert await container.redis.script_exists(ECHO.sha) == [True]
    assert await ECHO.run(container.redis, [], "second") == b"second"


async def test_a_connection_killed_between_batches_is_replaced(container: Container) -> None:
    """A connection killed while idle is not used again. redis-py 8's pool notices it when
    handing it out (the server's close is readable) and connects anew; older ones handed it out
    and the batch failed (with the client's retry policy, here none). Either way no caller
    hangs and the next batch runs on a new connection."""
    own = Redis.from_url(container.settings.redis_url, retry=Retry(NoBackoff(), 0))
    pipeline = AutoPipeline(own)
    client_id = await pipeline.execute("CLIENT", "ID")
    await container.redis.execute_command("CLIENT", "KILL", "ID", client_id)
    with contextlib.suppress(RedisConnectionError):
        assert await pipeline.execute("ECHO", "lost") == b"lost"
    assert await pipeline.execute("ECHO", "back") == b"back"
    assert await pipeline.execute("CLIENT", "ID") != client_id
    await own.aclose()


async def test_callers_learn_that_redis_is_away() -> None:
    nowhere = Redis(port=free_port(), retry=Retry(NoBackoff(), 1))
    pipeline = AutoPipeline(nowhere)
    with pytest.raises(RedisConnectionError):
        await asyncio.gather(pipeline.execute("PING"), pipeline.execute("PING"))
    await nowhere.aclose()


async def test_a_silent_server_fails_the_batch_at_the_deadline() -> None:
    """A Redis that takes the connection but never answers: the callers get Redis's timeout
    error (the API answers 503 to it) after the pipeline's deadline, not a hang."""
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    silent = Redis(port=port, socket_timeout=None, retry=Retry(NoBackoff(), 0))
    pipeline = AutoPipeline(silent, timeout=0.3)
    started = asyncio.get_running_loop().time()
    with pytest.raises(RedisTimeoutError):
        await asyncio.gather(pipeline.execute("PING"), pipeline.execute("PING"))
    assert asyncio.get_running_loop().time() - started < 2
    await pipeline.close()
    for writer in accepted:
        writer.close()
    server.close()
    await server.wait_closed()
