"""The event history feed (``GET /api/events``): pages of the archive in order, each event
upcast to its type's current version, for analysts.

Events come as they are served, in the feed and in a family's export (``services.family_export``)
alike: an event whose family or child was erased keeps its place with ``data`` null and
``erased`` true (CONTRACT §15). Full feed pages are kept per process (``feed_page``).
"""

from __future__ import annotations

import secrets

import msgspec

from adapters.container import Container
from domain.history import FeedQuery
from domain.timestamps import iso_ms
from projections.archive_pages import REWRITTEN_KEY, ArchivedEvent, current_body, read_page


class FeedEvent(msgspec.Struct, frozen=True):
    """One archived event as served: ``data`` is its body upcast to ``version`` (the current
    one), or ``null`` with ``erased: true`` once its family or child was erased."""

    position: int
    id: str
    type: str
    version: int
    occurred_at: str
    data: msgspec.Raw
    stored_version: int
    erased: bool


def feed_event(event: ArchivedEvent) -> FeedEvent:
    """``event`` as served."""
    version, body = current_body(event)
    return FeedEvent(
        position=event.position,
        id=event.id,
        type=event.type,
        version=version,
        occurred_at=iso_ms(event.occurred_at),
        data=msgspec.Raw(body),
        stored_version=event.version,
        erased=event.erased,
    )


async def feed_page(container: Container, query: FeedQuery) -> list[FeedEvent]:
    """The events after ``query.after`` that ``query`` wants, at most ``query.limit``.

    A full page never changes until archived rows are rewritten (``archive_rewritten``), so
    this process keeps it under the rewrite token read before it, and gives it again while the
    token stands (one ``GET``). A token is written if there is none, and nothing kept then."""
    token = await container.pipeline.execute("GET", REWRITTEN_KEY)
    if token is not None:
        kept: list[FeedEvent] | None = container.pages.get(query, token)
        if kept is not None:
            return kept
    async with container.engine.connect() as conn:
        page = await read_page(conn, container.keyring, query.after, query.limit, query.wanted)
    served = [feed_event(event) for event in page]
    if token is None:
        await container.pipeline.execute("SET", REWRITTEN_KEY, secrets.token_hex(8), "NX")
    elif len(served) == query.limit:
        container.pages.put(query, token, served)
    return served
