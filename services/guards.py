"""What the API's guards keep in Redis: request counts per rate-limit window, and the CSRF
signing key shared by every API process; and which client a session or device token counts as.

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
from domain.devices import is_device_token
from services import devices, sessions

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


async def token_client(container: Container, token: str) -> str | None:
    """The client a live device or session token counts as for rate limits (CONTRACT §8: each
    is a client of its own): ``device:<id>`` or ``session:<id>``. ``None`` for any other token,
    one that is unknown, revoked or expired, or when Redis does not answer: the caller then
    counts by address, so made-up tokens cannot each buy a budget of their own.

    One ``GET`` through the shared autopipeline, the same the route's own check makes.
    """
    try:
        if is_device_token(token):
            device = await devices.device_for_token(container, token)
            return None if device is None else f"device:{device.device_id}"
        if sessions.is_session_token(token):
            key = sessions.token_key(sessions.hash_token(token))
            session_id = await container.pipeline.execute("GET", key)
            return None if session_id is None else f"session:{int(session_id)}"
    except RedisError:
        return None
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
