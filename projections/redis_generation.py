"""Whether this Redis server has been checked against the archive since it started.

Redis with ``appendfsync everysec`` can come back from a host crash without its last second,
while the projectors had already archived some of that second in SQL: the command side (the
session id sequence, session states, the streams' last ids, the Redis projections) is then
behind the durable archive. ``projections.recovery`` compares and restores; this module only
remembers, per Redis server run, that it was done.

Every start of a Redis server gets a new ``run_id`` (``INFO server``). ``CHECKED_KEY`` holds
the ``run_id`` of the server on which the command side was last compared with the archive;
any other value (or none) means Redis started since. Scripts are not kept across a restart
either, so a ``NOSCRIPT`` reply to a command script or a projector's commit is the moment to
look, besides the start of every API process and every projector run.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from projections.redis_commands import text

CHECKED_KEY = "medio:command-side:checked"
NO_RUN_ID = "no-run-id"  # a server that does not report one (an in-process test server)


class RedisNotChecked(Exception):
    """Redis restarted and the command side has not been compared with the archive yet."""


async def run_id(redis: Redis) -> str:
    """The ``run_id`` of the server ``redis`` talks to (new at every server start)."""
    try:
        info = await redis.info("server")
    except ResponseError:  # no INFO: its keys then vanish with it, the check key among them
        return NO_RUN_ID
    return str(info.get("run_id") or NO_RUN_ID)


async def is_checked(redis: Redis) -> bool:
    """Whether the command side was checked against the archive on this server run."""
    checked = await redis.get(CHECKED_KEY)
    return checked is not None and text(checked) == await run_id(redis)


async def mark_checked(redis: Redis, server_run: str) -> None:
    await redis.set(CHECKED_KEY, server_run)
