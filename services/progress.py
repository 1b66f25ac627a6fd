"""Resume progress commands: each records one event; the resume projection does the rest.

A save depends on no stored state, so it is a single ``XADD`` in the user's stream (the user
is the ordering key, so one user's saves project in the order they were appended). Each append
notes itself as the user's last write, so the user's next reads wait for it
(``services.read_your_writes``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from adapters.container import Container
from adapters.eventlog import WRITTEN_TTL_MS, Decision, shard_for, stream_name, written_key
from adapters.list_cache import Listed
from adapters.scripts import Script
from domain.events import AnyEvent
from domain.progress import SaveProgress, epoch_ms, progress_deleted, progress_saved
from projections.resume import (
    ResumeEntry,
    ResumePosition,
    ResumeProjection,
    has_position,
    listed_positions,
    read_position,
    version_key,
)
from services.idempotency import Receipt, decide_once
from services.read_your_writes import await_own_writes, own_version, read_own

__all__ = [  # with the answers' types, for the API to document
    "ResumeEntry",
    "ResumePosition",
    "delete_progress",
    "get_progress",
    "list_progress",
    "save_progress",
]

T = TypeVar("T")

# The newest entry of the stream noted as the user's last write: at or past the user's own
# save, and never behind a note made before (KEYS: stream, note; ARGV: TTL in ms).
NOTE_NEWEST = Script("""
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if newest then redis.call('SET', KEYS[2], newest[1], 'PX', ARGV[1]) end
return 1
""")


async def save_progress(
    container: Container, actor: str, save: SaveProgress, receipt: Receipt[None] | None = None
) -> None:
    """Append ``progress.saved`` stamped with the server clock.

    With a ``receipt`` (a retry-safe save) the event and the answer are written together
    through ``decide_once``, which appends nothing if a twin request's answer is there; the
    user's last write is then noted as the stream's newest entry, which is at or past it.
    """
    event = progress_saved(save, actor, container.clock.now())
    await append_user_write(container, save.clerk_id, event, receipt)


async def append_user_write(
    container: Container, clerk_id: str, event: AnyEvent, receipt: Receipt[None] | None
) -> None:
    """Append a progress event of ``clerk_id``, noted as that user's last write.

    With a ``receipt`` it goes through ``decide_once`` (nothing is appended when a twin
    request's answer is there), and the note is the stream's newest entry, at or past it.
    """
    if receipt is None:
        await container.events.append(clerk_id, event, note_written=True)
        return
    await decide_once(container.events, clerk_id, [], lambda _: Decision(None, (event,)), receipt)
    shard = shard_for(clerk_id, container.events.shards)
    keys = [stream_name(shard), written_key(clerk_id, shard)]
    await container.pipeline.run(NOTE_NEWEST, keys, WRITTEN_TTL_MS)


async def delete_progress(container: Container, actor: str, clerk_id: str, tmdb_id: str) -> bool:
    """Append ``progress.deleted`` if the title has a position; ``False`` when there is none.

    The user's own earlier saves count: a delete right after a save finds it.
    """
    return await delete_if_present(
        container,
        clerk_id,
        ResumeProjection.name,
        lambda: has_position(container.pipeline, clerk_id, tmdb_id),
        lambda now: progress_deleted(clerk_id, tmdb_id, actor, now),
    )


async def delete_if_present(
    container: Container,
    clerk_id: str,
    projection: str,
    present: Callable[[], Awaitable[bool]],
    deleted: Callable[[datetime], AnyEvent],
) -> bool:
    """Append the delete event ``deleted(now)`` if ``present()`` finds something to delete,
    asked once the user's own writes are in ``projection``; whether it was appended."""
    await await_own_writes(container, clerk_id, projection)
    if not await present():
        return False
    await container.events.append(clerk_id, deleted(container.clock.now()), note_written=True)
    return True


async def get_progress(container: Container, clerk_id: str, tmdb_id: str) -> ResumePosition | None:
    """The title's position, once the user's own writes are in."""
    return await read_own(
        container,
        clerk_id,
        ResumeProjection.name,
        lambda: read_position(container.pipeline, clerk_id, tmdb_id),
    )


async def list_progress(container: Container, clerk_id: str, limit: int) -> list[ResumeEntry]:
    """The user's positions, newest first, once the user's own writes are in (a list this
    process read before is reused while the projection's version of it stands,
    ``adapters.list_cache``)."""
    return await read_list(
        container,
        clerk_id,
        limit,
        ResumeProjection.name,
        version_key,
        lambda now: listed_positions(container.pipeline, clerk_id, limit, now),
    )


async def read_list(
    container: Container,
    clerk_id: str,
    limit: int,
    projection: str,
    version_of: Callable[[str, int], str],
    load: Callable[[datetime], Awaitable[Listed[T]]],
) -> list[T]:
    """A per-user list of ``projection``: its version and read-your-writes in one ``MGET``,
    then the kept list or ``load(now)``."""
    shard = shard_for(clerk_id, container.settings.stream_shards)
    version = await own_version(container, clerk_id, projection, version_of(clerk_id, shard))
    now = container.clock.now()
    return await container.lists.read(
        (projection, clerk_id, limit), version, epoch_ms(now), lambda: load(now)
    )
