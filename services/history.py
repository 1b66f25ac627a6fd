"""The event history feed (``GET /api/events``): pages of the archive in order, each event
upcast to its type's current version, for analysts."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.container import Container
from domain.history import FeedQuery
from projections.archive_pages import ArchivedEvent, current_body, read_page


@dataclass(frozen=True)
class FeedEntry:
    """An archived event with its body at the current version of its type."""

    event: ArchivedEvent
    version: int
    body: bytes


async def feed_page(container: Container, query: FeedQuery) -> list[FeedEntry]:
    """The events after ``query.after`` that ``query`` wants, at most ``query.limit``."""
    async with container.engine.connect() as conn:
        page = await read_page(conn, query.after, query.limit, query.wanted)
    return [FeedEntry(event, *current_body(event)) for event in page]
