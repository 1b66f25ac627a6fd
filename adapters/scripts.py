"""Lua scripts run by their SHA1 (``EVALSHA``): a script's body travels only when Redis lacks it
(first use on a server, or after a restart or ``SCRIPT FLUSH``). Every script Medio runs is a
``Script``, on a client (``run``) or on the shared ``AutoPipeline``."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA1. A ``gated`` script changes the command side or a Redis
    projection: when Redis lacks it (Redis restarted), its caller's gate runs first (has Redis
    checked against the archive, or refuses until it is)."""

    source: str
    sha: str = field(init=False)
    gated: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    async def run(
        self,
        redis: Redis,
        keys: Sequence[Any],
        *args: Any,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> Any:
        """The script's reply on ``keys`` and ``args``, sent on its own round trip.

        When Redis lacks a ``gated`` script, ``gate`` is awaited before the body is sent; it
        raises to refuse.
        """
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            if self.gated and gate is not None:
                await gate()
            return await redis.eval(self.source, len(keys), *keys, *args)
