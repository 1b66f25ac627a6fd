"""The served OpenAPI document, made to describe what the API really answers.

Litestar documents each handler's success response, plus a 400 in its own validation shape
that Medio never sends. Litestar 2.25 has ``responses=`` per handler only (no Controller or
Router level), so instead of repeating the error responses on every handler, ``document_api``
rewrites the generated document once, at start-up, from a few rules in this one place:

* which errors an operation can answer (``error_statuses``): 401 unless the route is public,
  403 for CSRF on writes and for the routes that check roles or owners, 404 for ids, 409 for
  ended sessions, 408/413/415 for bodies, 416 for ranges, 429 and 503 everywhere under ``/api``,
  and on the routes that take an ``Idempotency-Key`` (``IDEMPOTENT``) the header, 409 and 422;
* in which shape (``error_response``): the progress family or the Medio family (CONTRACT §2),
  including the seed's special bodies (429, 413 upload, 403 daily limit);
* headers every response carries (``X-Request-ID``, ``X-RateLimit-*``, ``Retry-After``);
* the bearer/session-token security schemes;
* the request bodies Litestar cannot see (handlers read them as raw bytes or ``JSONBody[Any]``
  to answer with the seed's messages), the stream route's media types, 206, 302 and 416, and
  the thumbnail route's image, caching headers and 304.
"""

from __future__ import annotations

import copy
import dataclasses
import zoneinfo
from typing import Any

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
from litestar.openapi.spec.enums import OpenAPIFormat

from api.errors import is_progress_route
from domain.catalog import MAX_DURATION

STRING = Schema(type=OpenAPIType.STRING)
INTEGER = Schema(type=OpenAPIType.INTEGER)
NUMBER = Schema(type=OpenAPIType.NUMBER)
BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
METHODS = ("get", "put", "post", "delete", "patch")
BODY_METHODS = ("put", "post", "patch")

DEVICE_PAIR = ("post", "/api/devices/pair")
DEVICE_TOKEN = ("post", "/api/devices/token")
PUBLIC = {
    ("get", "/api/csrf-token"),
    ("post", "/api/sessions/start/public"),
    DEVICE_PAIR,
    DEVICE_TOKEN,
}
NO_STORE = {("get", "/api/csrf-token")}
OWNER_OR_ROLE_CHECKED = {
    ("get", "/api/events"),
    ("get", "/api/progress/{clerk_id}"),
    ("get", "/api/progress/{clerk_id}/{tmdb_id}"),
    ("delete", "/api/progress/{clerk_id}/{tmdb_id}"),
    ("get", "/api/progress/series/{clerk_id}"),
    ("get", "/api/progress/series/{clerk_id}/{series_id}"),
    ("get", "/api/progress/series/{clerk_id}/{series_id}/{tmdb_id}"),
}
IDS_IN_BODY = {("post", "/api/sessions/start"), ("post", "/api/sessions/start/public")}
SESSION_STATE = {
    ("post", "/api/sessions/{session_id}/heartbeat"),
    ("post", "/api/sessions/{session_id}/end"),
}
SESSION_TOKEN_ROUTES = SESSION_STATE | {("get", "/api/sessions/{session_id}")}
# Routes that take an ``Idempotency-Key`` (CONTRACT §12; ``api/idempotency.py``).
IDEMPOTENT = {
    ("post", "/api/sessions/start"),
    ("post", "/api/sessions/start/public"),
    ("post", "/api/sessions/{session_id}/end"),
    ("post", "/api/progress"),
    ("post", "/api/progress/series"),
    ("post", "/api/profiles"),
    ("post", "/api/videos"),
    ("post", "/api/videos/upload"),
}
UPLOAD = ("post", "/api/videos/upload")
STREAM = ("get", "/api/videos/{video_id}/stream")
THUMBNAIL = ("get", "/api/videos/{video_id}/thumbnail")

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


def _ref(name: str) -> Reference:
    return Reference(ref=f"#/components/schemas/{name}")


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

NO_NUL = "^[^\\x00]*$"
# Unknown fields are ignored, but every string in a JSON body, names included, is refused with
# NUL in it (api.limits: Postgres text cannot hold it): what an extra field may be.
JSON_WITHOUT_NUL = Schema(
    any_of=[
        Schema(type=OpenAPIType.STRING, pattern=NO_NUL),
        Schema(type=[OpenAPIType.NUMBER, OpenAPIType.BOOLEAN, OpenAPIType.NULL]),
        Schema(type=OpenAPIType.ARRAY, items=_ref("JsonWithoutNul")),
        Schema(
            type=OpenAPIType.OBJECT,
            property_names=Schema(type=OpenAPIType.STRING, pattern=NO_NUL),
            additional_properties=_ref("JsonWithoutNul"),
        ),
    ],
    title="JsonWithoutNul",
)

PROGRESS_SAVE_BODY = Schema(
    type=OpenAPIType.OBJECT,
    properties={
        "clerkId": Schema(type=OpenAPIType.STRING, min_length=1, pattern="^[^:\\x00]+$"),
        "tmdbId": Schema(
            one_of=[
                Schema(
                    type=OpenAPIType.STRING, min_length=1, max_length=64, pattern="^[^/\\x00]+$"
                ),
                Schema(type=OpenAPIType.INTEGER, minimum=0),
            ]
        ),
        "currentTime": Schema(type=OpenAPIType.NUMBER, minimum=0, maximum=604_800),
        "duration": Schema(type=OpenAPIType.NUMBER, exclusive_minimum=0, maximum=604_800),
    },
    required=["clerkId", "currentTime", "tmdbId"],
    property_names=Schema(type=OpenAPIType.STRING, pattern=NO_NUL),
    additional_properties=_ref("JsonWithoutNul"),
)
SERIES_SAVE_BODY = dataclasses.replace(
    PROGRESS_SAVE_BODY,
    properties={
        **(PROGRESS_SAVE_BODY.properties or {}),
        "seriesId": (PROGRESS_SAVE_BODY.properties or {})["tmdbId"],
    },
    required=["clerkId", "currentTime", "seriesId", "tmdbId"],
)
UPLOAD_BODY = Schema(
    type=OpenAPIType.OBJECT,
    properties={
        "video": BINARY,
        "thumbnail": BINARY,
        "title": Schema(type=OpenAPIType.STRING, min_length=1, max_length=200),
        "description": Schema(type=OpenAPIType.STRING, max_length=5000),
        "duration": Schema(type=OpenAPIType.STRING, pattern="^[0-9]{1,10}$"),
    },
    required=["title", "video"],
)


def _text(min_length: int, max_length: int) -> Schema:
    return Schema(type=OpenAPIType.STRING, min_length=min_length, max_length=max_length)


def _whole(minimum: int, maximum: int | None = None) -> Schema:
    return Schema(type=OpenAPIType.INTEGER, minimum=minimum, maximum=maximum)


def _body(required: list[str], **properties: Schema) -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        properties=dict(properties),
        required=required,
        property_names=Schema(type=OpenAPIType.STRING, pattern=NO_NUL),
        additional_properties=_ref("JsonWithoutNul"),
    )


HTTP_URL = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.URI, pattern="^https?://")
NULLABLE_URL = Schema(one_of=[HTTP_URL, Schema(type=OpenAPIType.NULL)])
# Text is checked after stripping whitespace (as the seed's trim-then-length rule does), and a
# JSON body may hold no NUL anywhere (api.limits): the length bounds apply to what is between
# the first and the last character that is not whitespace, so they are written in the pattern.
# Whitespace is Python's ``str.strip`` set, spelled out (ECMA's ``\\s`` differs from it).
_WS = (
    "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0"
    "\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
_TEXT = f"[^{_WS}\\x00]"  # a character that is neither whitespace nor NUL


def _stripped(most: int, least: int) -> Schema:
    """Text of ``least`` (1 or 2) to ``most`` characters once surrounding whitespace is gone."""
    middle = f"[^\\x00]{{0,{most - 2}}}{_TEXT}"
    inner = f"{_TEXT}{middle}" if least == 2 else f"{_TEXT}({middle})?"
    return Schema(type=OpenAPIType.STRING, pattern=f"^[{_WS}]*{inner}[{_WS}]*$")


NAME = _stripped(50, least=2)
TITLE = _stripped(200, least=1)
TIMEZONE = Schema(
    type=OpenAPIType.STRING,
    enum=sorted(zoneinfo.available_timezones()),
    description="IANA time zone, e.g. Europe/Paris",
)
PROFILE_FIELDS: dict[str, Schema] = {
    "name": NAME,
    "age": _whole(1, 17),
    "avatar_url": NULLABLE_URL,
    "daily_limit_minutes": _whole(0, 1440),
    "timezone": TIMEZONE,
    "kids_mode": Schema(type=OpenAPIType.BOOLEAN),
}
VIDEO_FIELDS: dict[str, Schema] = {
    "title": TITLE,
    "url": HTTP_URL,
    "thumbnail_url": NULLABLE_URL,
    "description": Schema(
        type=[OpenAPIType.STRING, OpenAPIType.NULL], max_length=5000, pattern=NO_NUL
    ),
    "duration": Schema(
        type=[OpenAPIType.INTEGER, OpenAPIType.NULL], minimum=0, maximum=MAX_DURATION
    ),
}
SESSION_START = _body(
    ["profile_id", "video_id"], profile_id=_whole(1, 2**63 - 1), video_id=_whole(1, 2**63 - 1)
)
# Bodies the handlers take as ``JSONBody[Any]`` (to answer with the seed's own messages), so
# Litestar documents them as "anything"; what they accept is described here.
JSON_BODIES: dict[tuple[str, str], tuple[Schema, bool]] = {
    ("post", "/api/progress"): (PROGRESS_SAVE_BODY, True),
    ("post", "/api/progress/series"): (SERIES_SAVE_BODY, True),
    ("post", "/api/profiles"): (_body(["age", "name"], **PROFILE_FIELDS), True),
    ("patch", "/api/profiles/{profile_id}"): (_body([], **PROFILE_FIELDS), True),
    ("post", "/api/videos"): (_body(["title", "url"], **VIDEO_FIELDS), True),
    ("patch", "/api/videos/{video_id}"): (_body([], **VIDEO_FIELDS), True),
    ("post", "/api/sessions/start"): (SESSION_START, True),
    ("post", "/api/sessions/start/public"): (SESSION_START, True),
    ("post", "/api/sessions/{session_id}/heartbeat"): (
        _body([], position=Schema(type=OpenAPIType.NUMBER, minimum=0, maximum=604_800)),
        False,
    ),
    DEVICE_TOKEN: (
        _body(["device_code"], device_code=Schema(type=OpenAPIType.STRING, pattern=NO_NUL)),
        True,
    ),
    ("post", "/api/profiles/{profile_id}/devices"): (
        _body(
            ["name", "user_code"],
            name=_stripped(50, least=1),
            user_code=Schema(
                type=OpenAPIType.STRING, pattern=NO_NUL, description="XXXX-XXXX, as shown"
            ),
        ),
        True,
    ),
    ("delete", "/api/me"): (
        _body(["confirm"], confirm=Schema(type=OpenAPIType.STRING, enum=["DELETE"])),
        True,
    ),
}


# Query numbers the handlers read as text (to answer with the seed's messages): what they take.
QUERY_NUMBERS: dict[tuple[str, str], Schema] = {
    ("/api/videos", "page"): _whole(1, 999_999_999),
    ("/api/videos", "limit"): _whole(1, 100),
    ("/api/profiles", "page"): _whole(1, 999_999_999),
    ("/api/profiles", "limit"): _whole(1, 100),
    ("/api/device/videos", "page"): _whole(1, 999_999_999),
    ("/api/device/videos", "limit"): _whole(1, 100),
    ("/api/progress/{clerk_id}", "limit"): _whole(1, 500),
    ("/api/progress/series/{clerk_id}", "limit"): _whole(1, 500),
    ("/api/events", "limit"): _whole(1, 1000),
    ("/api/events", "after"): _whole(0),
}


# Path segments that stand before another one in a resume key hold no ``:`` (finding M3,
# ``domain.progress.valid_key_segment``); a series id is otherwise a tmdbId (1-64, no ``/``).
PATH_SEGMENTS = {
    "clerk_id": Schema(type=OpenAPIType.STRING, min_length=1, pattern="^[^:]+$"),
    "series_id": Schema(type=OpenAPIType.STRING, min_length=1, max_length=64, pattern="^[^:/]+$"),
}


def _parameter_schemas(path: str, operation: Operation) -> None:
    """Query numbers with their bounds, progress path segments with their rules."""
    for parameter in operation.parameters or []:
        if not isinstance(parameter, Parameter):
            continue
        schema: Schema | None = None
        if parameter.param_in == ParamType.QUERY:
            schema = QUERY_NUMBERS.get((path, parameter.name))
        elif parameter.param_in == ParamType.PATH and is_progress_route(path):
            schema = PATH_SEGMENTS.get(parameter.name)
        if schema is not None:
            parameter.schema = schema


def _header(schema: Schema, description: str, required: bool = False) -> OpenAPIHeader:
    return OpenAPIHeader(schema=schema, description=description, required=required)


REQUEST_ID = _header(STRING, "The request's id (echoed or made), also in error bodies", True)


def _rate_headers(required: bool) -> dict[str, OpenAPIHeader | Reference]:
    return {
        "X-RateLimit-Limit": _header(INTEGER, "Requests allowed in the window", required),
        "X-RateLimit-Remaining": _header(INTEGER, "Requests left in the window", required),
        "X-RateLimit-Reset": _header(INTEGER, "Epoch seconds when the window ends", required),
    }


def error_statuses(method: str, path: str, operation: Operation) -> set[int]:
    """The error statuses ``method path`` can answer (see the module docstring)."""
    if not path.startswith("/api/"):
        return {503} if path == "/ready" else set()
    key = (method, path)
    locations = {getattr(p, "param_in", None) for p in operation.parameters or []}
    statuses = {429}
    if key not in NO_STORE:
        statuses.add(503)
    if key not in PUBLIC:
        statuses |= {401, 403}  # 403: a device token (CONTRACT §14) on a route it may not use
    if method in BODY_METHODS or key in JSON_BODIES:
        statuses |= {400, 403, 408, 413, 415}
    if method == "delete" or key in OWNER_OR_ROLE_CHECKED:
        statuses.add(403)
    if "query" in locations or (is_progress_route(path) and "path" in locations):
        statuses.add(400)
    if "path" in locations or key in IDS_IN_BODY:
        statuses.add(404)
    if key in SESSION_STATE or key in IDEMPOTENT:
        statuses.add(409)
    if key in IDEMPOTENT:
        statuses |= {400, 422}
    if key == STREAM:
        statuses.add(416)
    return statuses


def error_response(method: str, path: str, status: int) -> OpenAPIResponse:
    """The documented answer for ``status`` on ``method path``, in the route family's shape."""
    key = (method, path)
    shapes: list[str]
    if status == 429:
        shapes = ["RateLimited"]
    elif is_progress_route(path):
        shapes = (
            ["ProgressError", "ProgressValidationError"] if status == 400 else ["ProgressError"]
        )
    elif status == 400 and key == DEVICE_TOKEN:
        shapes = ["DeviceFlowError", "MedioError", "FieldErrors"]
    elif status == 400:
        shapes = ["MedioError", "FieldErrors"]
    elif status == 403 and key in IDS_IN_BODY:
        shapes = ["MedioError", "DailyLimitExceeded"]
    elif status == 413 and key == UPLOAD:
        shapes = ["FileTooLarge", "MedioError"]
    else:
        shapes = ["MedioError"]
    schema: Schema | Reference = (
        _ref(shapes[0]) if len(shapes) == 1 else Schema(any_of=[_ref(s) for s in shapes])
    )
    headers: dict[str, OpenAPIHeader | Reference] = {"X-Request-ID": REQUEST_ID}
    if status in (429, 503):
        headers["Retry-After"] = _header(INTEGER, "Seconds to wait before retrying", True)
    if status == 429:
        headers.update(_rate_headers(required=True))
    if status == 401:
        headers["WWW-Authenticate"] = _header(STRING, "Bearer", True)
    if status == 416:
        headers["Content-Range"] = _header(STRING, "bytes */<size>", True)
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
REPLAYED = _header(
    Schema(type=OpenAPIType.STRING, const="true"), "Present on an answer repeated for a retry"
)


def _security(key: tuple[str, str]) -> list[dict[str, list[str]]]:
    if key in PUBLIC:
        return []
    if key in SESSION_TOKEN_ROUTES:
        return [{"bearer": []}, {"sessionToken": []}]
    if key == STREAM:
        return [{"bearer": []}, {"accessToken": []}]
    return [{"bearer": []}]


def _stream_responses(operation: Operation) -> None:
    """Bytes of the video's own type, whole (200) or a range (206), or a redirect (302)."""
    video = {"video/*": OpenAPIMediaType(schema=BINARY)}
    ranges = _header(STRING, "bytes", True)
    responses = operation.responses or {}
    responses["200"] = OpenAPIResponse(
        description="The whole file", content=video, headers={"Accept-Ranges": ranges}
    )
    responses["206"] = OpenAPIResponse(
        description="The requested byte range",
        content=video,
        headers={"Accept-Ranges": ranges, "Content-Range": _header(STRING, "bytes a-b/size", True)},
    )
    responses["302"] = OpenAPIResponse(
        description="The video only has an external url",
        headers={"Location": _header(STRING, "The video's url", True)},
    )
    operation.responses = responses


def _thumbnail_responses(operation: Operation) -> None:
    """The stored image (its own type), cacheable by the caller only, or 304 when unchanged."""
    headers: dict[str, OpenAPIHeader | Reference] = {
        "Cache-Control": _header(STRING, "private, max-age=86400", True),
        "ETag": _header(STRING, "The stored image's tag (send it as If-None-Match)", True),
        "X-Content-Type-Options": _header(STRING, "nosniff", True),
    }
    images = {"image/*": OpenAPIMediaType(schema=BINARY)}
    responses = operation.responses or {}
    responses["200"] = OpenAPIResponse(description="The image", content=images, headers=headers)
    responses["304"] = OpenAPIResponse(description="Unchanged since If-None-Match", headers=headers)
    operation.parameters = [
        *(operation.parameters or []),
        Parameter(name="If-None-Match", param_in=ParamType.HEADER, schema=STRING, required=False),
    ]
    operation.responses = responses


def _document_operation(method: str, path: str, operation: Operation) -> None:
    key = (method, path)
    if key in JSON_BODIES:
        body, required = JSON_BODIES[key]
        content = {"application/json": OpenAPIMediaType(schema=body)}
        operation.request_body = RequestBody(content=content, required=required)
    elif key == UPLOAD:
        content = {"multipart/form-data": OpenAPIMediaType(schema=UPLOAD_BODY)}
        operation.request_body = RequestBody(content=content, required=True)
    elif key == STREAM:
        _stream_responses(operation)
    elif key == THUMBNAIL:
        _thumbnail_responses(operation)
    _parameter_schemas(path, operation)
    if key in IDEMPOTENT and IDEMPOTENCY_KEY not in (operation.parameters or []):
        operation.parameters = [*(operation.parameters or []), IDEMPOTENCY_KEY]
    responses = operation.responses or {}
    responses.pop("400", None)  # Litestar's own validation shape; never sent
    for status in sorted(error_statuses(method, path, operation)):
        responses[str(status)] = error_response(method, path, status)
    for code, response in responses.items():
        if isinstance(response, OpenAPIResponse) and code == "204":
            response.content = None  # no body, whatever the handler's return annotation says
        if isinstance(response, OpenAPIResponse) and not code.startswith(("4", "5")):
            response.headers = {
                **(response.headers or {}),
                "X-Request-ID": REQUEST_ID,
                **(_rate_headers(required=False) if path.startswith("/api/") else {}),
                **({"Idempotent-Replayed": REPLAYED} if key in IDEMPOTENT else {}),
            }
    operation.responses = responses
    if path.startswith("/api/"):
        operation.security = _security(key)


# Operations served by raw ASGI handlers, which Litestar does not document (api/progress.py
# says why the ingest routes are ones): (method, path) -> the operation's own parts; the rest
# (body, errors, headers, security) is added below like for every other operation. The schemas
# of their responses go into the components beside the error schemas.
ASGI_SCHEMAS: dict[str, Schema] = {
    "HeartbeatOut": dataclasses.replace(
        _object(
            status=STRING, session_id=INTEGER, last_heartbeat=STRING, remaining_minutes=INTEGER
        ),
        title="HeartbeatOut",
    ),
}
ASGI_OPERATIONS: dict[tuple[str, str], Operation] = {
    ("post", "/api/progress"): Operation(
        operation_id="ProgressSave",
        summary="Save a resume position (appends progress.saved)",
        tags=["progress"],
        responses={"204": OpenAPIResponse(description="Saved")},
    ),
    ("post", "/api/sessions/{session_id}/heartbeat"): Operation(
        operation_id="ApiSessionsSessionIdHeartbeatHeartbeat",  # as when Litestar wrote it
        summary="Keep a session alive",
        tags=["sessions"],
        parameters=[
            Parameter(name="session_id", param_in=ParamType.PATH, schema=INTEGER, required=True)
        ],
        responses={
            "200": OpenAPIResponse(
                description="Request fulfilled, document follows",
                content={"application/json": OpenAPIMediaType(schema=_ref("HeartbeatOut"))},
            )
        },
    ),
}


def _add_asgi_operations(openapi: OpenAPI) -> None:
    paths = openapi.paths if openapi.paths is not None else {}
    for (method, path), operation in ASGI_OPERATIONS.items():
        item = paths.get(path) or PathItem()
        if getattr(item, method) is None:
            setattr(item, method, copy.deepcopy(operation))
        paths[path] = item
    openapi.paths = paths


def document_openapi(openapi: OpenAPI) -> None:
    """Add error responses, headers, security and hidden bodies to ``openapi`` (idempotent)."""
    _add_asgi_operations(openapi)
    components = openapi.components or Components()
    components.schemas = {
        **components.schemas,
        **ERROR_SCHEMAS,
        **ASGI_SCHEMAS,
        "JsonWithoutNul": JSON_WITHOUT_NUL,
    }
    components.security_schemes = {**(components.security_schemes or {}), **SECURITY_SCHEMES}
    openapi.components = components
    for path, item in (openapi.paths or {}).items():
        for method in METHODS:
            operation: Any = getattr(item, method, None)
            if isinstance(operation, Operation):
                _document_operation(method, path, operation)


def document_api(app: Litestar) -> None:
    """Start-up hook: the routes are all registered by now, and the document not yet served."""
    document_openapi(app.openapi_schema)
