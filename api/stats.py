"""``GET /api/profiles/:id/stats``: a parent's view of a child's watching (CONTRACT §6).

A fast route (``api/fast.py``): parents' apps poll it, and an answer kept by the process
(``services.profile_reads``) costs little next to Litestar's route machinery. Figures come from
the stats projections, so they trail the newest heartbeats by the projection lag.
"""

from __future__ import annotations

from typing import Any

from api.errors import ApiError
from api.fast import PRINCIPAL, Call, Endpoint, fast_route
from api.route_facts import RouteFacts
from domain.stats import ProfileStats
from services.stats import profile_stats


async def stats(call: Call[Any]) -> ProfileStats:
    found = await profile_stats(
        call.services.container, call.caller.user_id, call.params["profile_id"]
    )
    if found is None:
        raise ApiError(404, "Profile not found")
    return found


ROUTES = [
    fast_route(
        "/api/profiles/{profile_id:int}/stats",
        Endpoint(
            "GET",
            stats,
            "Watch statistics of a profile",
            RouteFacts(),
            auth=PRINCIPAL,
            answer=ProfileStats,
            path={"profile_id": int},
        ),
        tags=["profiles"],
    )
]
