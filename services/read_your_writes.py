"""Read your own writes (CONTRACT §4): a user's reads wait for the projection to pass their
last write, so a player that saves, closes and refetches "continue watching" sees its save.

A save or delete of progress is answered once its event is in the log; the resume projection
applies it a few milliseconds later. The append notes the entry id as the user's last write
(``EventLog.append(..., note_written=True)``, atomically with the ``XADD``). A read compares
that note with the projection's checkpoint in the user's shard:

* nothing noted, or the checkpoint at or past it: the read goes ahead. This check is one
  ``MGET`` sent in the same round trip as the read itself (``read_own``), so a user with
  nothing pending pays no extra wait;
* otherwise the read waits, polling the checkpoint (1 ms, doubling to 20 ms), until the
  projection passes the write or ``MEDIO_READ_YOUR_WRITES_TIMEOUT_MS`` (1000) has gone by, and
  then reads. Only that user's read waits; nobody else's is slowed.

The note expires after a minute (``WRITTEN_TTL_MS``): a projection that far behind answers
what it has, as it would after the timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from adapters.container import Container
from adapters.eventlog import shard_for, written_key
from projections.base import stream_id_key
from projections.checkpoints import redis_checkpoint_key

log = logging.getLogger("medio.read_your_writes")

T = TypeVar("T")
FIRST_POLL_SECONDS = 0.001
MAX_POLL_SECONDS = 0.02


def _keys(container: Container, user: str, projection: str) -> list[str]:
    shard = shard_for(user, container.settings.stream_shards)
    return [written_key(user, shard), redis_checkpoint_key(projection, shard)]


def _caught_up(noted: list[bytes | None]) -> bool:
    written, applied = noted
    if written is None:
        return True
    if applied is None:
        return False
    return stream_id_key(written.decode()) <= stream_id_key(applied.decode())


async def await_own_writes(container: Container, user: str, projection: str) -> None:
    """Return once ``projection`` has applied ``user``'s last noted write (or on timeout)."""
    keys = _keys(container, user, projection)
    if _caught_up(await container.pipeline.execute("MGET", *keys)):
        return
    await _wait(container, keys, user, projection)


async def own_version(container: Container, user: str, projection: str, version: str) -> Any:
    """The value of the key ``version`` once ``user``'s own writes are in ``projection``.

    Read in the same ``MGET`` as the check (the keys share the shard's slot): a user with
    nothing pending pays one command for both."""
    keys = [*_keys(container, user, projection), version]
    *noted, value = await container.pipeline.execute("MGET", *keys)
    if _caught_up(noted):
        return value
    await _wait(container, keys[:2], user, projection)
    return await container.pipeline.execute("GET", version)


async def read_own(
    container: Container, user: str, projection: str, read: Callable[[], Awaitable[T]]
) -> T:
    """``read()`` once ``user``'s own writes are in ``projection``.

    The check and a first ``read()`` are sent together (one round trip through the shared
    pipeline); only when a write was pending is ``read()`` run again after the wait.
    """
    keys = _keys(container, user, projection)
    check = container.pipeline.send("MGET", *keys)  # queued before read()'s first command
    try:
        result = await read()
    except BaseException:
        check.cancel()  # nobody will await it
        raise
    if _caught_up(await check):
        return result
    await _wait(container, keys, user, projection)
    return await read()


async def _wait(container: Container, keys: list[str], user: str, projection: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + container.settings.read_your_writes_timeout_ms / 1000
    delay = FIRST_POLL_SECONDS
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(delay, left))
        if _caught_up(await container.pipeline.execute("MGET", *keys)):
            return
        delay = min(delay * 2, MAX_POLL_SECONDS)
    log.warning(
        "projection behind a user's own write; answering what is projected",
        extra={"projection": projection, "user": user},
    )
