"""Lua scripts run by their SHA1 (``EVALSHA``): a script's body travels only when Redis lacks it
(first use on a server, or after a restart or ``SCRIPT FLUSH``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA1. A ``gated`` script changes the command side: when Redis lacks
    it (Redis restarted), ``AutoPipeline.run`` first has Redis checked against the archive."""

    source: str
    sha: str = field(init=False)
    gated: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    async def run(self, redis: Redis, keys: Sequence[Any], *args: Any) -> Any:
        """The script's reply on ``keys`` and ``args``, sent on its own round trip."""
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await redis.eval(self.source, len(keys), *keys, *args)
