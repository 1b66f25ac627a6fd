"""``GET /api/events``: the event history feed for analysts (CONTRACT §10, docs/events.md)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter

from api.auth import Principal
from api.deps import ContainerDep, PrincipalDep
from api.errors import ApiError, FieldError, InvalidFields
from domain.history import FeedQuery, parse_feed_query
from projections.archive_pages import FeedEvent, feed_event, read_page

HISTORY_ROLES = frozenset({"analyst", "admin"})


class EventFeed(msgspec.Struct, frozen=True):
    """A page in archive order; ``next`` is the ``after`` of the next page, null at the end."""

    events: list[FeedEvent]
    next: int | None


def _authorise(principal: Principal) -> None:
    if principal.role not in HISTORY_ROLES:
        raise ApiError(403, "The event history is for analyst and admin roles only")


def _query(
    after: str | None,
    limit: str | None,
    types: list[str] | None,
    since: str | None,
    until: str | None,
) -> FeedQuery:
    query, problems = parse_feed_query(after, limit, types or [], since, until)
    if query is None:
        raise InvalidFields([FieldError(p.path, p.msg, "query") for p in problems])
    return query


class EventsController(Controller):
    """The archive, page by page, for people who analyse or replay what happened."""

    path = "/api/events"

    @get(summary="Event history in archive order (analyst, admin)")
    async def list_events(
        self,
        container: ContainerDep,
        principal: PrincipalDep,
        after: FromQuery[str | None] = None,
        limit: FromQuery[str | None] = None,
        types: Annotated[list[str] | None, QueryParameter(name="type")] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
    ) -> EventFeed:
        _authorise(principal)
        query = _query(after, limit, types, since, until)
        async with container.engine.connect() as conn:
            page = await read_page(conn, container.keyring, query.after, query.limit, query.wanted)
        full = len(page) == query.limit
        return EventFeed(
            events=[feed_event(event) for event in page],
            next=page[-1].position if full else None,
        )
