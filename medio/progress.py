"""Resume progress commands: each records one event; the resume projection does the rest.

A save depends on no stored state, so it is a single ``XADD`` in the user's stream (the user
is the ordering key, so one user's saves project in the order they were appended). Each append
notes itself as the user's last write, so the user's next reads wait for it
(``medio.read_your_writes``).
"""

from __future__ import annotations

from domain.progress import SaveProgress, progress_deleted, progress_saved
from medio.bootstrap import Container
from medio.read_your_writes import await_own_writes
from medio.resume_store import has_position
from projections.resume import ResumeProjection


async def save_progress(container: Container, actor: str, save: SaveProgress) -> None:
    """Append ``progress.saved`` stamped with the server clock."""
    event = progress_saved(save, actor, container.clock.now())
    await container.events.append(save.clerk_id, event, note_written=True)


async def delete_progress(container: Container, actor: str, clerk_id: str, tmdb_id: str) -> bool:
    """Append ``progress.deleted`` if the title has a position; ``False`` when there is none.

    The user's own earlier saves count: a delete right after a save finds it.
    """
    await await_own_writes(container, clerk_id, ResumeProjection.name)
    if not await has_position(container.pipeline, clerk_id, tmdb_id):
        return False
    event = progress_deleted(clerk_id, tmdb_id, actor, container.clock.now())
    await container.events.append(clerk_id, event, note_written=True)
    return True
