"""What the API's guards keep in Redis: request counts per rate-limit window, and the CSRF
signing key shared by every API process.

``count_request`` fails open: when Redis is down it answers ``None`` and the request is not
counted (the routes that need Redis answer 503 themselves).
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from redis.exceptions import RedisError

from adapters.container import Container
from adapters.scripts import Script

log = logging.getLogger("medio.guards")

CSRF_KEY = "medio:csrf-key"
LOAD_TIMEOUT_SECONDS = 5.0
# Count a request and start its window's expiry on the first hit: atomic, one round trip
# (a MULTI pipeline of INCR + EXPIRE costs four commands and measurably more CPU per request).
COUNT_SCRIPT = Script("""
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
""")


async def count_request(container: Container, key: str, seconds: int) -> int | None:
    """The requests counted under ``key`` (this one included) in a window of ``seconds``, or
    ``None`` when Redis cannot count it."""
    try:
        # Through the shared autopipeline: concurrent requests' counts share a round trip.
        return int(await container.pipeline.run(COUNT_SCRIPT, [key], seconds + 1))
    except RedisError:
        return None


async def shared_csrf_key(container: Container) -> str:
    """The CSRF signing key every API process shares, made by the first one to ask; a key of
    this process alone when Redis does not answer (tokens are then good here only)."""
    try:
        async with asyncio.timeout(LOAD_TIMEOUT_SECONDS):
            await container.redis.set(CSRF_KEY, secrets.token_hex(32), nx=True)
            shared = await container.redis.get(CSRF_KEY)
    except Exception as exc:  # Redis down at start: this process's own key, for now
        log.warning("CSRF key not read from Redis (%s): tokens valid in this process", exc)
        return secrets.token_hex(32)
    return shared.decode() if isinstance(shared, bytes) else str(shared)
