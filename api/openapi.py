"""The served OpenAPI document, made to describe what the API really answers.

Litestar documents each handler's success response, plus a 400 in its own validation shape
that Medio never sends, and does not document ASGI handlers at all. Litestar 2.25 has
``responses=`` per handler only (no Controller or Router level), so instead of repeating the
error responses on every handler, ``document_api`` rewrites the generated document once, at
start-up, from each route's facts (``api/route_facts.py``, declared on the route):

* the fast routes' operations (``api/fast.py``), built from their declared structs;
* which errors an operation can answer (``error_statuses``): 401 unless the route is public,
  403 there too (a paired device's token on a route it may not use), 403 for CSRF on writes
  and for the routes that check roles or owners, 404 for ids, 409 for ended sessions,
  408/413/415 for bodies, 429 and 503 everywhere under ``/api``, and on the routes that take
  an ``Idempotency-Key`` the header, 409 and 422;
* in which shape (``error_response``): the route's error family (CONTRACT §2), including the
  seed's special bodies (429, 413 upload, 403 daily limit) and the device flow's polling 400;
* headers every response carries (``X-Request-ID``, ``X-RateLimit-*``, ``Retry-After``);
* the bearer/session-token security schemes;
* the request bodies Litestar cannot see (handlers read them as raw bytes or ``JSONBody[Any]``
  to answer with the seed's messages), and a route's own hook for what else it answers (the
  stream route's media types and ranges, the thumbnail's image and 304).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import msgspec
from litestar import Litestar
from litestar.enums import ParamType
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)

from api.fast import FAST, PATH_TYPES, TAGS, Endpoint, operation_id
from api.idempotency import Idempotent
from api.openapi_parts import (
    INTEGER,
    STRING,
    header,
    ref,
)
from api.route_facts import DEFAULT, RouteFacts, facts_of, handlers_of
from domain.text import NO_NUL

METHODS = ("get", "put", "post", "delete", "patch")
BODY_METHODS = ("put", "post", "patch")

DESCRIPTIONS = {
    400: "Invalid input",
    401: "Missing, invalid or expired token",
    403: "Not allowed (role, owner, CSRF, daily limit, or a device token on a parent's route)",
    404: "No such resource for this caller",
    408: "The request body did not arrive in time",
    409: "The session has already ended, or a request with this Idempotency-Key is running",
    413: "Request body too large",
    415: "Unsupported content type",
    416: "Range not satisfiable",
    422: "This Idempotency-Key was already used for a different request",
    429: "Too many requests",
    503: "A backing store is unavailable; retry",
}


def _object(**properties: Schema | Reference) -> Schema:
    return Schema(type=OpenAPIType.OBJECT, properties=properties, required=sorted(properties))


ERROR_SCHEMAS: dict[str, Schema] = {
    "ProgressError": _object(error=STRING),
    "ProgressValidationError": _object(
        error=Schema(type=OpenAPIType.STRING, const="Validation failed"),
        details=Schema(type=OpenAPIType.OBJECT, additional_properties=STRING),
    ),
    "MedioError": _object(
        error=_object(message=STRING, status=INTEGER, timestamp=STRING, requestId=STRING)
    ),
    "FieldErrors": _object(
        errors=Schema(
            type=OpenAPIType.ARRAY,
            items=_object(
                type=Schema(type=OpenAPIType.STRING, const="field"),
                msg=STRING,
                path=STRING,
                location=Schema(type=OpenAPIType.STRING, enum=["body", "query", "params"]),
            ),
        )
    ),
    "RateLimited": _object(message=STRING, retryAfter=INTEGER),
    # The device's token polling (CONTRACT §14, RFC 8628 §3.5): why there is no token yet.
    "DeviceFlowError": _object(
        error=Schema(
            type=OpenAPIType.STRING,
            enum=["authorization_pending", "slow_down", "expired_token", "invalid_grant"],
        )
    ),
    "FileTooLarge": _object(
        message=STRING,
        field=Schema(type=OpenAPIType.STRING, enum=["video", "thumbnail"]),
        code=Schema(type=OpenAPIType.STRING, const="FILE_TOO_LARGE"),
    ),
    # ``profile_name`` only for a parent's token: an anonymous kids-mode caller learns no names.
    "DailyLimitExceeded": Schema(
        type=OpenAPIType.OBJECT,
        properties={
            "message": STRING,
            "limit_minutes": INTEGER,
            "watched_minutes": INTEGER,
            "profile_name": STRING,
        },
        required=["limit_minutes", "message", "watched_minutes"],
    ),
}

SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
    "sessionToken": SecurityScheme(
        type="apiKey", name="X-Session-Token", security_scheme_in="header"
    ),
    "accessToken": SecurityScheme(type="apiKey", name="access_token", security_scheme_in="query"),
}

# Unknown fields are ignored, but every string in a JSON body, names included, is refused with
# NUL in it (api.limits: Postgres text cannot hold it): what an extra field may be.
JSON_WITHOUT_NUL = Schema(
    # One schema for any JSON value, each keyword applying to its own type (``pattern`` to
    # strings, ``items`` to arrays, the names and values to objects): no ``anyOf``, whose
    # branches a negative test generator "breaks" into another branch's valid type.
    type=[
        OpenAPIType.STRING,
        OpenAPIType.NUMBER,
        OpenAPIType.BOOLEAN,
        OpenAPIType.NULL,
        OpenAPIType.ARRAY,
        OpenAPIType.OBJECT,
    ],
    pattern=NO_NUL,
    items=ref("JsonWithoutNul"),
    property_names=Schema(type=OpenAPIType.STRING, pattern=NO_NUL),
    additional_properties=ref("JsonWithoutNul"),
    title="JsonWithoutNul",
)


def _parameter_schemas(facts: RouteFacts, operation: Operation) -> None:
    """Query parameters with the schemas their route declares."""
    for parameter in operation.parameters or []:
        if isinstance(parameter, Parameter) and parameter.param_in == ParamType.QUERY:
            parameter.schema = facts.query.get(parameter.name, parameter.schema)


REQUEST_ID = header(STRING, "The request's id (echoed or made), also in error bodies", True)


def _rate_headers(required: bool) -> dict[str, OpenAPIHeader | Reference]:
    return {
        "X-RateLimit-Limit": header(INTEGER, "Requests allowed in the window", required),
        "X-RateLimit-Remaining": header(INTEGER, "Requests left in the window", required),
        "X-RateLimit-Reset": header(INTEGER, "Epoch seconds when the window ends", required),
    }


def error_statuses(method: str, path: str, operation: Operation, facts: RouteFacts) -> set[int]:
    """The error statuses ``method path`` can answer (see the module docstring)."""
    if not path.startswith("/api/"):
        return {503} if facts.stores else set()
    locations = {getattr(p, "param_in", None) for p in operation.parameters or []}
    statuses = {429}
    if facts.stores is not False:
        statuses.add(503)
    if not facts.public:
        statuses |= {401, 403}  # 403: a device token (CONTRACT §14) on a route it may not use
    if method in BODY_METHODS or facts.json_body is not None:  # a DELETE with a body too
        statuses |= {400, 403, 408, 413, 415}
    if method == "delete" or facts.checks_owner:
        statuses.add(403)
    if "query" in locations or (facts.errors == "progress" and "path" in locations):
        statuses.add(400)
    if "path" in locations or facts.ids_in_body:
        statuses.add(404)
    if facts.session_state or facts.idempotent:
        statuses.add(409)
    if facts.idempotent:
        statuses |= {400, 422}
    if facts.ranges:
        statuses.add(416)
    return statuses


def error_response(facts: RouteFacts, status: int) -> OpenAPIResponse:
    """The documented answer for ``status`` on a route, in the route family's shape."""
    shapes: list[str]
    if status == 429:
        shapes = ["RateLimited"]
    elif facts.errors == "progress":
        shapes = (
            ["ProgressError", "ProgressValidationError"] if status == 400 else ["ProgressError"]
        )
    elif status == 400 and facts.device_flow:
        shapes = ["DeviceFlowError", "MedioError", "FieldErrors"]
    elif status == 400:
        shapes = ["MedioError", "FieldErrors"]
    elif status == 403 and facts.ids_in_body:
        shapes = ["MedioError", "DailyLimitExceeded"]
    elif status == 413 and facts.file_upload:
        shapes = ["FileTooLarge", "MedioError"]
    else:
        shapes = ["MedioError"]
    schema: Schema | Reference = (
        ref(shapes[0]) if len(shapes) == 1 else Schema(any_of=[ref(s) for s in shapes])
    )
    headers: dict[str, OpenAPIHeader | Reference] = {"X-Request-ID": REQUEST_ID}
    if status in (429, 503):
        headers["Retry-After"] = header(INTEGER, "Seconds to wait before retrying", True)
    if status == 429:
        headers.update(_rate_headers(required=True))
    if status == 401:
        headers["WWW-Authenticate"] = header(STRING, "Bearer", True)
    if status == 416:
        headers["Content-Range"] = header(STRING, "bytes */<size>", True)
    return OpenAPIResponse(
        description=DESCRIPTIONS[status],
        headers=headers,
        content={"application/json": OpenAPIMediaType(schema=schema)},
    )


IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255, pattern="^[ -~]+$"),
    required=False,
    description="Makes a retry safe: a repeat within 24 h gets the first answer again",
)
REPLAYED = header(
    Schema(type=OpenAPIType.STRING, const="true"), "Present on an answer repeated for a retry"
)


def _security(facts: RouteFacts) -> list[dict[str, list[str]]]:
    if facts.public:
        return []
    if facts.session_token:
        return [{"bearer": []}, {"sessionToken": []}]
    if facts.access_token:
        return [{"bearer": []}, {"accessToken": []}]
    return [{"bearer": []}]


def _document_operation(
    method: str, path: str, operation: Operation, facts: RouteFacts, components: dict[str, Any]
) -> None:
    if facts.json_body is not None:
        body = facts.json_body
        if not isinstance(body, Schema):  # a struct
            body = _json_object(_schema(body, components, inline=True))
        content = {"application/json": OpenAPIMediaType(schema=body)}
        operation.request_body = RequestBody(content=content, required=facts.body_required)
    if facts.document is not None:
        facts.document(operation)
    _parameter_schemas(facts, operation)
    if facts.idempotent and IDEMPOTENCY_KEY not in (operation.parameters or []):
        operation.parameters = [*(operation.parameters or []), IDEMPOTENCY_KEY]
    responses = operation.responses or {}
    responses.pop("400", None)  # Litestar's own validation shape; never sent
    for status in sorted(error_statuses(method, path, operation, facts)):
        responses[str(status)] = error_response(facts, status)
    for code, response in responses.items():
        if isinstance(response, OpenAPIResponse) and code == "204":
            response.content = None  # no body, whatever the handler's return annotation says
        if isinstance(response, OpenAPIResponse) and not code.startswith(("4", "5")):
            response.headers = {
                **(response.headers or {}),
                "X-Request-ID": REQUEST_ID,
                **(_rate_headers(required=False) if path.startswith("/api/") else {}),
                **({"Idempotent-Replayed": REPLAYED} if facts.idempotent else {}),
            }
    operation.responses = responses
    if path.startswith("/api/"):
        operation.security = _security(facts)


def _facts_by_operation(app: Litestar, openapi: OpenAPI) -> dict[tuple[str, str], RouteFacts]:
    """Each operation's route facts; the fast routes' operations are added to ``openapi``."""
    found: dict[tuple[str, str], RouteFacts] = {}
    paths = openapi.paths if openapi.paths is not None else {}
    components = openapi.components or Components()
    schemas: dict[str, Any] = dict(components.schemas or {})
    for route in app.routes:
        for handler in handlers_of(route):
            if FAST in handler.opt:
                item = paths.setdefault(route.path_format, PathItem())
                for method, operation in fast_operations(handler, schemas).items():
                    if getattr(item, method) is None:
                        setattr(item, method, operation)
                for method, endpoint in handler.opt[FAST].items():
                    found[(method.lower(), route.path_format)] = endpoint.facts
                continue
            facts = facts_of(handler)
            if any(isinstance(layer, Idempotent) for layer in handler.middleware or ()):
                facts = replace(facts, idempotent=True)  # its ``Idempotent`` layer says so
            for method in getattr(handler, "http_methods", ()):
                found[(method.lower(), route.path_format)] = facts
    openapi.paths = paths
    components.schemas = schemas
    openapi.components = components
    return found


def document_openapi(app: Litestar, openapi: OpenAPI) -> None:
    """Add the fast routes, error responses, headers, security and hidden bodies to ``openapi``
    (idempotent)."""
    facts = _facts_by_operation(app, openapi)
    components = openapi.components or Components()
    components.schemas = {
        **components.schemas,
        **ERROR_SCHEMAS,
        "JsonWithoutNul": JSON_WITHOUT_NUL,
    }
    components.security_schemes = {**(components.security_schemes or {}), **SECURITY_SCHEMES}
    openapi.components = components
    for path, item in (openapi.paths or {}).items():
        for method in METHODS:
            operation: Any = getattr(item, method, None)
            if isinstance(operation, Operation):
                found = facts.get((method, path), DEFAULT)
                _document_operation(method, path, operation, found, components.schemas)


def document_api(app: Litestar) -> None:
    """Start-up hook: the routes are all registered by now, and the document not yet served."""
    document_openapi(app, app.openapi_schema)


# The fast routes' operations (``api/fast.py``), from their declared structs.


def fast_operations(route: Any, components: dict[str, Any]) -> dict[str, Operation]:
    """The OpenAPI operations of a fast route, by lower-case method; the structs their schemas
    name go into ``components``. Errors, headers and security are added like for every route."""
    endpoints: Mapping[str, Endpoint] = route.opt[FAST]
    (path,) = route.paths
    found: dict[str, Operation] = {}
    for method, endpoint in endpoints.items():
        parameters: list[Parameter | Reference] = [
            Parameter(
                name=name,
                param_in=ParamType.PATH,
                required=True,
                schema=_schema(endpoint.path.get(name, PATH_TYPES[kind]), components),
            )
            for name, kind in re.findall(r"\{(\w+):(\w+)\}", path)
        ]
        parameters += [
            Parameter(
                name=name,
                param_in=ParamType.QUERY,
                required=False,
                allow_empty_value=False,
                allow_reserved=False,
                description=query.description,
                schema=_schema(query.schema, components),
            )
            for name, query in endpoint.query.items()
        ]
        body = None
        if endpoint.body is not None:
            schema = _json_object(_schema(endpoint.body.schema, components, inline=True))
            body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=schema)},
                required=endpoint.body.required,
            )
        found[method.lower()] = Operation(
            operation_id=endpoint.operation_id
            or operation_id(path, endpoint.handler.__name__.lstrip("_")),
            summary=endpoint.summary,
            tags=route.opt[TAGS] or None,
            parameters=parameters or None,
            request_body=body,
            responses={str(endpoint.status): _answer(endpoint, components)},
            deprecated=False,
        )
    return found


def _schema(kind: Any, components: dict[str, Any], inline: bool = False) -> Any:
    """The JSON Schema of ``kind`` (a dict, which the document serves as it is); the structs
    it names go into ``components``, or with ``inline`` a struct's own schema is returned."""
    (schema,), found = msgspec.json.schema_components(
        [kind], ref_template="#/components/schemas/{name}"
    )
    for component in found.values():
        component.pop("description", None)  # docstrings are for readers of the code
        _sort_required(component)
    _sort_required(schema)
    if inline and "$ref" in schema:
        schema = found.pop(schema["$ref"].rsplit("/", 1)[1])
        schema.pop("title", None)
    components.update(found)
    return schema


def _sort_required(schema: Any) -> None:
    """``required`` in name order, as Litestar writes it (msgspec keeps the fields' order)."""
    if isinstance(schema, dict):
        if isinstance(schema.get("required"), list):
            schema["required"] = sorted(schema["required"])
        for value in schema.values():
            _sort_required(value)
    elif isinstance(schema, list):
        for value in schema:
            _sort_required(value)


def _answer(endpoint: Endpoint, components: dict[str, Any]) -> OpenAPIResponse:
    if endpoint.answer is None:
        described = endpoint.answered or "Request fulfilled, nothing follows"
        return OpenAPIResponse(description=described, headers={})
    return OpenAPIResponse(
        description=endpoint.answered or "Request fulfilled, document follows",
        headers={},
        content={"application/json": OpenAPIMediaType(schema=_schema(endpoint.answer, components))},
    )


def _json_object(schema: Any) -> Any:
    """A JSON body's schema with what every JSON body obeys (``api.limits``): no NUL in any
    name, and unknown fields ignored but NUL-free."""
    return {
        **schema,
        "propertyNames": {"type": "string", "pattern": NO_NUL},
        "additionalProperties": {"$ref": "#/components/schemas/JsonWithoutNul"},
    }
