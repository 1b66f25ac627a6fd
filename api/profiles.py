"""``/api/profiles``: a parent's child profiles (seed 004, CONTRACT §6).

Every route is scoped to the caller: another parent's profile id answers 404, exactly like an
id that never existed.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from api.bodies import checked_body
from api.catalog_schema import (
    ProfileList,
    ProfileOut,
    answer_profile,
    not_found,
    page_query,
    profile_out,
)
from api.deps import ContainerDep, PrincipalDep, services_of
from api.idempotency import Idempotent, receipt_of
from api.openapi_parts import PAGING
from api.route_facts import facts
from domain.catalog import (
    ProfileCreate,
    ProfileUpdate,
    check_profile,
    page_metadata,
    profile_values,
)
from domain.policy import POLICY_FIELDS
from services import catalog, policy, privacy, sessions
from services.idempotency import SQL_ANSWERS

DEFAULT_LIMIT = 10
POLICY_INPUTS = {"daily_limit_minutes", "timezone", *POLICY_FIELDS}


class ProfilesController(Controller):
    """Create, list, read, change and remove the caller's child profiles."""

    path = "/api/profiles"
    tags = ["profiles"]

    @get(summary="The caller's profiles, a page at a time", opt=facts(query=PAGING))
    async def list_profiles(
        self,
        container: ContainerDep,
        principal: PrincipalDep,
        page: FromQuery[str | None] = None,
        limit: FromQuery[str | None] = None,
    ) -> ProfileList:
        wanted = page_query(page, limit, DEFAULT_LIMIT)
        found, total = await catalog.list_profiles(container, principal.user_id, wanted)
        return ProfileList(
            profiles=[profile_out(p) for p in found], metadata=page_metadata(wanted, total)
        )

    @post(
        summary="Create a child profile",
        opt=facts(json_body=ProfileCreate),
        dependencies={"profile": checked_body(ProfileCreate, lambda b: check_profile(b, "create"))},
        middleware=[Idempotent(SQL_ANSWERS)],
    )
    async def create_profile(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        principal: PrincipalDep,
        profile: NamedDependency[ProfileCreate],
    ) -> ProfileOut:
        values = profile_values(profile, container.settings.default_timezone)
        receipt = receipt_of(request.scope, answer_profile)
        now = container.clock.now()
        created = await services_of(request.app.state).users.write_as(
            principal.sub,
            principal.user_id,
            lambda user_id: catalog.create_profile(container, user_id, values, now, receipt),
        )
        await policy.record_policy(container, created, principal.sub)
        return profile_out(created)

    @get("/{profile_id:int}", summary="One of the caller's profiles")
    async def get_profile(
        self, container: ContainerDep, principal: PrincipalDep, profile_id: FromPath[int]
    ) -> ProfileOut:
        found = await catalog.get_profile(container, principal.user_id, profile_id)
        if found is None:
            raise not_found("Profile")
        return profile_out(found)

    @patch(
        "/{profile_id:int}",
        summary="Change some fields of a profile",
        opt=facts(json_body=ProfileUpdate),
        dependencies={"change": checked_body(ProfileUpdate, lambda b: check_profile(b, "update"))},
    )
    async def update_profile(
        self,
        container: ContainerDep,
        principal: PrincipalDep,
        profile_id: FromPath[int],
        change: NamedDependency[ProfileUpdate],
    ) -> ProfileOut:
        values = profile_values(change, container.settings.default_timezone)
        changed = await catalog.update_profile(
            container, principal.user_id, profile_id, values, container.clock.now()
        )
        if changed is None:
            raise not_found("Profile")
        if POLICY_INPUTS & values.keys():  # applies to running sessions at their next beat
            await policy.record_policy(container, changed, principal.sub)
        if values.get("kids_mode") is False:  # kids-mode sessions stop counting now
            await sessions.end_profile_sessions(container, profile_id, "parent", public_only=True)
        return profile_out(changed)

    @delete("/{profile_id:int}", summary="Remove a profile")
    async def delete_profile(
        self, container: ContainerDep, principal: PrincipalDep, profile_id: FromPath[int]
    ) -> Response[None]:
        if not await privacy.erase_profile(container, principal.user_id, profile_id):
            raise not_found("Profile")
        return Response(content=None, status_code=204)
