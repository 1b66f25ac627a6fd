"""Fast routes: the hot paths (ingest and progress reads) as raw ASGI handlers, declared in a few
lines each.

Litestar's ``@get``/``@post`` routes build a ``Request``, a signature model, injected
dependencies and a ``Response`` per call, and run the guards' middleware layer around them; on the
progress list that machinery cost about as much CPU as the read itself. A fast route is one
Litestar ``@asgi`` handler per path that does only what the route needs, in this order:

1. the method (405 with ``Allow``, or the 204 ``OPTIONS`` answer Litestar gives its routes);
2. the guards, inline (``api.guards.admit``: rate limit, CSRF, body limits), then the
   ``Idempotency-Key`` layer for a route that takes one (``api.idempotency.run_once``);
3. the caller (``Auth``: the bearer token's ``sub``, its ``Principal`` with the user row, or a
   session token where the route takes one);
4. the body, decoded by the route's parser into its struct (its errors are ``ApiError`` or
   ``InvalidFields``, which the app's exception handlers render in the route's error family);
5. the handler, ``async def (call) -> answer``; the answer is encoded with msgspec.

Litestar still routes the request, runs its exception handlers on whatever the route raises and
the request-id layer around it. Litestar does not document ASGI handlers, so ``api/openapi.py``
builds each declaration's OpenAPI operation from the same structs: parameters, body and answer
schemas come from ``msgspec.json.schema_components``; the errors, headers and security
come from the route's facts (``api/route_facts.py``), as for every other route (``api/openapi.py``).

A route, in full (``api/progress.py``)::

    async def _read(call: Call[None]) -> ResumePosition:
        clerk_id = owner(call, call.params["clerk_id"])  # 400 or 403 unless the caller's
        position = await get_progress(call.services.container, clerk_id, ...)
        ...

    title = fast_route(
        "/api/progress/{clerk_id:str}/{tmdb_id:str}",
        Endpoint("GET", _read, "The resume position of one title", PROGRESS,
                 answer=ResumePosition, path={"clerk_id": ClerkId}),
        Endpoint("DELETE", _forget, "Forget a resume position", PROGRESS, status=204),
        tags=["progress"],
    )
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl

import msgspec
from litestar import Litestar, asgi
from litestar.exceptions import MethodNotAllowedException
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send

from api.auth import Principal, bearer_token, unauthorized
from api.deps import (
    Services,
    authenticate_subject,
    header_value,
    principal_of,
    send_json,
    services_of,
)
from api.errors import ApiError
from api.guards import admit
from api.idempotency import HEADER as IDEMPOTENCY_KEY
from api.idempotency import receipt_of, run_once
from api.limits import MSG_MEDIA_TYPE, is_json_media_type, replay
from api.route_facts import INLINE_GUARDS, RouteFacts
from services.idempotency import REDIS_ANSWERS, Receipt

B = TypeVar("B")
FAST = "fast"  # opt key: the route's endpoints by method, for the OpenAPI document
TAGS = "fast_tags"  # opt key: its OpenAPI tags
PATH_TYPES = {"str": str, "int": int}  # a path parameter's documented type by default
ALLOWED_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]


class Call(Generic[B]):
    """What a fast route's handler gets: the request's parts, already checked."""

    __slots__ = ("_render", "body", "caller", "params", "scope", "services")

    def __init__(
        self,
        scope: Scope,
        services: Services,
        caller: Any,
        body: B,
        render: Callable[[Any], tuple[int, bytes]],
    ) -> None:
        self.scope = scope
        self.services = services
        self.params: dict[str, Any] = scope["path_params"]  # typed by the router
        self.caller = caller  # what the route's ``Auth`` resolved: a ``sub``, a session caller
        self.body = body
        self._render = render

    def query(self, name: str) -> str | None:
        """The last value of query parameter ``name`` (as Litestar reads a single value)."""
        raw = self.scope.get("query_string", b"")
        if not raw:
            return None
        found = None
        for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True, separator="&"):
            if key == name:
                found = value
        return found

    def queries(self, name: str) -> list[str]:
        """Every value of query parameter ``name``, in order (a list parameter)."""
        raw = self.scope.get("query_string", b"")
        if not raw:
            return []
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, separator="&")
        return [value for key, value in pairs if key == name]

    def receipt(self) -> Receipt[Any] | None:
        """What the route's command stores with its effect under an ``Idempotency-Key``."""
        return receipt_of(self.scope, self._render)


@dataclass(frozen=True)
class Auth:
    """How a route knows its caller, and the OpenAPI security schemes that say so."""

    resolve: Callable[[Services, Scope], Awaitable[Any]]
    security: tuple[str, ...]


async def _bearer_sub(services: Services, scope: Scope) -> str:
    """The verified bearer token's ``sub`` (401 otherwise); the user row is noted, not awaited."""
    claims = await authenticate_subject(services, header_value(scope, b"authorization"))
    return claims.sub


BEARER = Auth(_bearer_sub, ("bearer",))


async def _principal(services: Services, scope: Scope) -> Principal:
    """The bearer token's caller with its user row, as ``PrincipalDep`` gives ``@get`` routes."""
    token = bearer_token(header_value(scope, b"authorization"))
    if token is None:
        raise unauthorized()
    return await principal_of(services, token)


PRINCIPAL = Auth(_principal, ("bearer",))  # ``call.caller`` is an ``api.deps.Principal``


@dataclass(frozen=True)
class Body(Generic[B]):
    """A JSON request body: the struct it is documented as and the parser that makes one.

    ``parse`` raises ``ApiError`` or ``InvalidFields`` with the route family's messages (the
    seed's own, for the progress routes), so it is the route's, not a generic msgspec decode.
    ``required``: an empty body is refused (415 unless it is declared JSON) rather than parsed.
    """

    schema: Any
    parse: Callable[[bytes], B]
    required: bool = True


@dataclass(frozen=True)
class Query:
    """A query parameter, read as text by the handler (``call.query``); ``schema`` documents it."""

    schema: Any
    description: str | None = None


Handler = Callable[[Call[Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    """One method of a fast route (see the module docstring for an example)."""

    method: str
    handler: Handler
    summary: str
    facts: RouteFacts
    auth: Auth = BEARER
    answer: Any = None  # the type of the JSON answer; ``None`` answers ``status`` with no body
    status: int = 200
    body: Body[Any] | None = None
    path: Mapping[str, Any] = field(default_factory=dict)  # path parameters' documented types
    query: Mapping[str, Query] = field(default_factory=dict)
    operation_id: str | None = None  # default: Litestar's, from the path and the handler's name
    answered: str | None = None  # the success response's description, if not Litestar's

    def render(self, answer: Any) -> tuple[int, bytes]:
        """The status and body of ``answer`` (also what an idempotent retry gets again)."""
        if self.answer is None:
            return self.status, b""
        return self.status, _encoder.encode(answer)


_encoder = msgspec.json.Encoder()


async def _no_body(send: Send, status: int) -> None:
    # Fresh messages each time: outer layers add their headers to the message they get.
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _serve(endpoint: Endpoint, scope: Scope, body: bytes, send: Send) -> None:
    """Steps 3-5 of the module docstring, once the guards admitted ``body``."""
    services = services_of(scope["app"].state)
    spec = endpoint.body
    # The guards check the type of non-empty bodies only; a route that needs one checks it.
    needs_body = spec is not None and spec.required and not body
    if needs_body and not is_json_media_type(header_value(scope, b"content-type")):
        raise ApiError(415, MSG_MEDIA_TYPE)
    caller = await endpoint.auth.resolve(services, scope)
    parsed = spec.parse(body) if spec is not None else None
    answer = await endpoint.handler(Call(scope, services, caller, parsed, endpoint.render))
    if endpoint.answer is None:
        await _no_body(send, endpoint.status)
    else:
        await send_json(send, endpoint.status, _encoder.encode(answer))


def fast_route(
    path: str, *endpoints: Endpoint, tags: Sequence[str] = (), name: str | None = None
) -> ASGIRouteHandler:
    """One Litestar ASGI handler serving ``endpoints`` (one per method) at ``path``.

    The endpoints of one path share their rate-limit policy, publicness and error family: those
    are the handler's facts (``scope["route_handler"]``), read by the layers around it.
    """
    by_method = {e.method: e for e in endpoints}
    first = endpoints[0]
    shared = {(e.facts.policy, e.facts.public, e.facts.errors) for e in endpoints}
    if len(by_method) != len(endpoints) or len(shared) != 1:
        raise ValueError(f"{path}: one endpoint per method, with the same policy and family")
    allow = ", ".join(by_method)  # a 405's ``Allow``
    options = ", ".join(sorted({*by_method, "OPTIONS"}))  # an ``OPTIONS`` answer's, as Litestar's

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = by_method.get(str(scope.get("method")))
        if endpoint is None:
            if scope.get("method") == "OPTIONS":  # counted like Litestar's own OPTIONS route
                await admit(scope, receive, "general")
                headers = [(b"allow", options.encode()), *ALLOWED_HEADERS]
                await send({"type": "http.response.start", "status": 204, "headers": headers})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            raise MethodNotAllowedException(headers={"Allow": allow})
        body = await admit(scope, receive, endpoint.facts.policy or "general")
        if endpoint.facts.idempotent and header_value(scope, IDEMPOTENCY_KEY) is not None:

            async def keyed(scope: Scope, receive: Receive, send: Send) -> None:
                message: Any = await receive()  # the admitted body, back through ``receive``
                await _serve(endpoint, scope, message.get("body", b""), send)

            await run_once(scope, replay(body, receive), send, keyed, REDIS_ANSWERS)
        else:
            await _serve(endpoint, scope, body, send)

    serve.__name__ = name or first.handler.__name__
    opt = first.facts.opt(**{INLINE_GUARDS: True, FAST: by_method, TAGS: list(tags)})
    return asgi(path, opt=opt, copy_scope=False)(serve)


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def route_path_parameters(app: Litestar) -> None:
    """Let ASGI handlers (fast routes) take path parameters: call once the app is built.

    Litestar 2.25 (the range pinned in ``pyproject.toml``) files an ASGI route's path
    parameters under the key ``"asgi"`` in its routing trie but looks them up under the
    request's method, so every request to such a route fails with a ``KeyError`` (a 500).
    Filing them under each HTTP method too is the whole fix; the router's own code then parses
    them as for any route (``tests/unit/test_fast_routing.py`` shows both). Methods outside that
    list (``QUERY``, ``PROPFIND``) find them too, so they reach the handler and get its 405
    rather than a ``KeyError``.
    """
    _file_under_methods(app.asgi_router.root_route_map_node)


def _file_under_methods(node: Any) -> None:
    parameters = node.path_parameters.get("asgi") if node.is_asgi else None
    if parameters:
        for method in HTTP_METHODS:
            node.path_parameters.setdefault(method, parameters)
        node.path_parameters = _AnyMethod(node.path_parameters)
    for child in node.children.values():
        _file_under_methods(child)


class _AnyMethod(dict[str, Any]):
    """An ASGI route's path parameters, under whatever method a request names."""

    def __missing__(self, method: str) -> Any:
        if method == "asgi" or "asgi" not in self:
            raise KeyError(method)
        return self["asgi"]


def openapi_path(path: str) -> str:
    """``/a/{b:int}`` as OpenAPI writes it: ``/a/{b}``."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path).rstrip("/") or "/"


def operation_id(path: str, handler_name: str) -> str:
    """The operation id Litestar gives a route: its path's words, then its handler's name."""
    words = re.findall(r"[A-Za-z0-9]+", openapi_path(path).replace("_", " ") + " " + handler_name)
    return "".join(word[:1].upper() + word[1:] for word in words)


def _schema(kind: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of ``kind``; the structs it names go into ``components``."""
    (schema,), found = msgspec.json.schema_components(
        [kind], ref_template="#/components/schemas/{name}"
    )
    for name, component in found.items():
        component.pop("description", None)  # docstrings are for readers of the code
        components[name] = component
    return schema
