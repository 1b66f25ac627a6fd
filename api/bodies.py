"""Typed JSON bodies that answer with the seed's messages.

A controller takes its body as a msgspec struct (``ProfileCreate``, ``VideoUpdate``...) through
a dependency made by ``checked_body``: the JSON object is first checked by the feature's domain
rule, which words every problem as the seed does (seed 004: all bad fields at once, each with
its own message), then converted into the struct, whose ``Meta`` constraints carry the same
bounds and give the OpenAPI document its body schema (``facts(json_body=...)``). msgspec alone
would stop at the first bad field with its own wording.

The dependency takes ``principal`` so that it runs after authentication: a bad body from a
caller without a valid token is a 401, as before; malformed JSON is a 400 before both, since
Litestar reads ``data`` first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from litestar.di import Provide
from litestar.params import JSONBody

from api.catalog_schema import invalid, json_object
from api.deps import PrincipalDep
from domain.catalog import Problem


def checked_body(
    kind: type[msgspec.Struct],
    check: Callable[[dict[str, Any]], list[Problem]],
    required: bool = True,
) -> Provide:
    """A dependency giving the request's body as ``kind`` once ``check`` found nothing wrong
    (with ``required`` false, no body reads as ``{}``)."""

    async def provide_body(principal: PrincipalDep, data: JSONBody[Any] = None) -> Any:
        body = json_object({} if data is None and not required else data)
        if problems := check(body):
            raise invalid(problems)
        # lax: a checked integer may be written 5.0 (JSON Schema's ``integer`` counts it)
        return msgspec.convert(body, kind, strict=False)

    return Provide(provide_body)
