"""``GET /api/profiles/:id/stats``: a parent's view of a child's watching (CONTRACT §6).

Its own controller (the profiles CRUD controller is separate); figures come from the stats
projections, so they trail the newest heartbeats by the projection lag.
"""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath

from api.deps import ContainerDep, PrincipalDep
from api.errors import ApiError
from domain.stats import ProfileStats
from services.stats import profile_stats


class ProfileStatsController(Controller):
    """Watch statistics of one of the caller's profiles."""

    path = "/api/profiles"
    tags = ["profiles"]

    @get("/{profile_id:int}/stats", summary="Watch statistics of a profile")
    async def stats(
        self, container: ContainerDep, principal: PrincipalDep, profile_id: FromPath[int]
    ) -> ProfileStats:
        found = await profile_stats(container, principal.user_id, profile_id)
        if found is None:
            raise ApiError(404, "Profile not found")
        return found
