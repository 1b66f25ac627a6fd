"""``GET /api/events``: the event history feed for analysts (CONTRACT §10, docs/events.md)."""

from __future__ import annotations

from typing import Any

import msgspec

from api.auth import Principal
from api.errors import ApiError, FieldError, InvalidFields
from api.fast import PRINCIPAL, Call, Endpoint, Query, fast_route
from api.openapi_parts import EVENT_QUERY
from api.route_facts import RouteFacts
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


async def list_events(call: Call[Any]) -> EventFeed:
    """A fast route (``api/fast.py``): a full page kept by the process (``services.history``)
    costs little next to Litestar's route machinery."""
    _authorise(call.caller)
    query = _query(
        call.query("after"),
        call.query("limit"),
        call.queries("type"),
        call.query("since"),
        call.query("until"),
    )
    page = await feed_page(call.services.container, query)
    full = len(page) == query.limit
    return EventFeed(events=page, next=page[-1].position if full else None)


ROUTES = [
    fast_route(
        "/api/events",
        Endpoint(
            "GET",
            list_events,
            "Event history in archive order (analyst, admin)",
            RouteFacts(checks_owner=True, query=EVENT_QUERY),
            auth=PRINCIPAL,
            answer=EventFeed,
            query={
                "after": Query(int | None),
                "limit": Query(int | None),
                "type": Query(list[str] | None),
                "since": Query(str | None),
                "until": Query(str | None),
            },
            operation_id="ApiEventsListEvents",
        ),
    )
]
