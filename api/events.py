"""``GET /api/events``: the event history feed for analysts (CONTRACT §10, docs/events.md)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter

from api.auth import Principal
from api.deps import ContainerDep, PrincipalDep
from api.errors import ApiError, FieldError, InvalidFields
from api.openapi_parts import EVENT_QUERY
from api.route_facts import facts
from domain.history import FeedQuery, parse_feed_query
from services.history import FeedEvent, feed_page

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

    @get(
        summary="Event history in archive order (analyst, admin)",
        opt=facts(checks_owner=True, query=EVENT_QUERY),
    )
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
        page = await feed_page(container, query)
        full = len(page) == query.limit
        return EventFeed(events=page, next=page[-1].position if full else None)
