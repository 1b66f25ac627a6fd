"""Autopipelining: commands issued concurrently by many requests share one round trip.

At ingest rates each request sends one or two small commands (a rate-limit count, an
``XADD``). Sent one by one, redis-py spends far more CPU per command than the command costs
Redis; queued for one event-loop tick and written as one pipeline, the per-command cost drops
several-fold. Order within a batch is the order of issue. Not transactional: each command is
atomic on its own, which is all these callers need.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

Command = tuple[Any, ...]


@dataclass(frozen=True)
class Script:
    """A Lua script run by its SHA1 (``EVALSHA``): its body travels only when Redis lacks it."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


class AutoPipeline:
    """Queue ``execute(*args)`` calls; flush them together on the next loop iteration."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pending: list[tuple[Command, asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def execute(self, *args: Any) -> Any:
        """Run one Redis command (``"XADD", key, "*", ...``) in the next batch; its reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    async def run(self, script: Script, keys: Sequence[Any], *args: Any) -> Any:
        """Run ``script`` on ``keys`` and ``args`` in the next batch; its reply."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:  # first use on this server, or after SCRIPT FLUSH: load it
            return await self.execute("EVAL", script.source, len(keys), *keys, *args)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        self._tasks.add(task)  # keep a reference until done (asyncio holds tasks weakly)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for args, _ in batch:
                    pipe.execute_command(*args)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # connection lost, cancelled: every caller learns it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
