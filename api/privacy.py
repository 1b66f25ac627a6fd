"""``/api/me``: a family takes its data (export) or erases it (CONTRACT §15).

Both act on the caller alone: the family is the token's ``sub``. The export is streamed as it
is read (``services.family_export``); the erasure (``services.privacy``) answers once the
family's rows, files, Redis keys and privacy keys are gone, and this process forgets the
account's user row at once (the others on hearing the erasure: ``services.users``), so that
the next request with the same ``sub`` starts a new, empty user.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Controller, Request, delete, get
from litestar.params import JSONBody
from litestar.response import Stream

from api.catalog_schema import json_object
from api.deps import ContainerDep, PrincipalDep, services_of
from api.errors import FieldError, InvalidFields
from api.openapi_parts import export_response
from api.route_facts import facts
from services.family_export import Family, export_family
from services.privacy import erase_family

CONFIRMATION = "DELETE"


class FamilyErasure(msgspec.Struct, frozen=True):
    """An erasure's body: the caller confirms it (read by ``erase``, which names the field)."""

    confirm: Literal["DELETE"]


class Erased(msgspec.Struct, frozen=True):
    status: str


class MeController(Controller):
    """The caller's own data, all of it."""

    path = "/api/me"
    tags = ["privacy"]

    @get(
        "/export",
        summary="Everything Medio holds about the caller, as one JSON document",
        opt=facts(document=export_response),
    )
    async def export(self, container: ContainerDep, principal: PrincipalDep) -> Stream:
        family = Family(clerk_id=principal.sub, user_id=principal.user_id)
        return Stream(
            export_family(container, family),
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="medio-export.json"'},
        )

    @delete(
        summary="Erase the caller's family: rows, files, keys and events' data",
        status_code=200,
        opt=facts(json_body=FamilyErasure),
    )
    async def erase(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        principal: PrincipalDep,
        data: JSONBody[Any] = None,
    ) -> Erased:
        body = json_object(data)
        if body.get("confirm") != CONFIRMATION:
            raise InvalidFields(
                [FieldError("confirm", f'Send {{"confirm": "{CONFIRMATION}"}} to erase', "body")]
            )
        await erase_family(container, principal.sub, principal.user_id)
        services_of(request.app.state).users.forget(principal.sub)
        return Erased(status="erased")
