"""The parts of the OpenAPI document that routes declare on themselves (``api/route_facts.py``):
schemas of the JSON bodies and query numbers that handlers read raw (to answer with the seed's
messages), and the hooks that describe what a media route answers. ``api/openapi.py`` applies
them; this module imports nothing of the app, so any controller may import it.
"""

from __future__ import annotations

import zoneinfo

from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIFormat

from domain.catalog import MAX_DURATION, MAX_PAGE_LIMIT
from domain.devices import MAX_NAME_LENGTH
from domain.history import MAX_FEED_LIMIT
from domain.policy import (
    MAX_BONUS_MINUTES,
    MAX_DAY_MINUTES,
    MAX_MIN_AGE,
    MAX_REQUEST_MESSAGE,
    MAX_REQUEST_MINUTES,
    MAX_WARNING_MINUTES,
    MIN_BONUS_MINUTES,
    MIN_REQUEST_MINUTES,
    WEEKDAYS,
)

STRING = Schema(type=OpenAPIType.STRING)
INTEGER = Schema(type=OpenAPIType.INTEGER)
NUMBER = Schema(type=OpenAPIType.NUMBER)
BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)


def ref(name: str) -> Reference:
    return Reference(ref=f"#/components/schemas/{name}")


NO_NUL = "^[^\\x00]*$"


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
        additional_properties=ref("JsonWithoutNul"),
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
# The parental policy's fields (CONTRACT §13, ``domain.policy``).
_NULL = Schema(type=OpenAPIType.NULL)
_HHMM = Schema(type=OpenAPIType.STRING, pattern="^([01][0-9]|2[0-3]):[0-5][0-9]$")
_WINDOW = Schema(
    type=OpenAPIType.OBJECT,
    properties={"start": _HHMM, "end": _HHMM},
    required=["end", "start"],
    additional_properties=False,
    description="start and end differ; a window whose end is earlier wraps midnight",
)
_WEEKDAY_LIMITS = Schema(
    type=OpenAPIType.OBJECT,
    properties={
        day: Schema(
            type=[OpenAPIType.INTEGER, OpenAPIType.NULL], minimum=0, maximum=MAX_DAY_MINUTES
        )
        for day in WEEKDAYS
    },
    additional_properties=False,
)
_BEDTIME_DAYS = Schema(
    type=OpenAPIType.OBJECT,
    properties={day: Schema(one_of=[_WINDOW, _NULL]) for day in WEEKDAYS},
    additional_properties=False,
)
POLICY_FIELDS: dict[str, Schema] = {
    "weekday_limits": Schema(one_of=[_WEEKDAY_LIMITS, _NULL]),
    "bedtime": Schema(one_of=[_WINDOW, _BEDTIME_DAYS, _NULL]),
    "warning_minutes": _whole(0, MAX_WARNING_MINUTES),
    "limit_action": Schema(type=OpenAPIType.STRING, enum=["finish_video", "stop"]),
}
PROFILE_FIELDS: dict[str, Schema] = {
    "name": NAME,
    "age": _whole(1, 17),
    "avatar_url": NULLABLE_URL,
    "daily_limit_minutes": _whole(0, 1440),
    "timezone": TIMEZONE,
    "kids_mode": Schema(type=OpenAPIType.BOOLEAN),
    **POLICY_FIELDS,
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
    "min_age": _whole(0, MAX_MIN_AGE),
}
PROFILE_CREATE = _body(["age", "name"], **PROFILE_FIELDS)
PROFILE_UPDATE = _body([], **PROFILE_FIELDS)
VIDEO_CREATE = _body(["title", "url"], **VIDEO_FIELDS)
VIDEO_UPDATE = _body([], **VIDEO_FIELDS)
# The device's token polling and the parent's confirmation (CONTRACT §14): a made-up code is a
# 400, but every string is one the handlers read.
DEVICE_TOKEN = _body(["device_code"], device_code=Schema(type=OpenAPIType.STRING, pattern=NO_NUL))
DEVICE_CONFIRM = _body(
    ["name", "user_code"],
    name=_stripped(MAX_NAME_LENGTH, least=1),
    user_code=Schema(type=OpenAPIType.STRING, pattern=NO_NUL, description="XXXX-XXXX, as shown"),
)
# The parent's actions and the child's requests (CONTRACT §13).
_BONUS_MINUTES = _whole(MIN_BONUS_MINUTES, MAX_BONUS_MINUTES)
BONUS_BODY = _body(["minutes"], minutes=_BONUS_MINUTES)
LOCK_BODY = _body(
    [],
    until=Schema(
        one_of=[Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME), _NULL],
        description="An instant with its offset; null or absent: until unlocked",
    ),
)
TIME_REQUEST_BODY = _body(
    ["minutes"],
    minutes=_whole(MIN_REQUEST_MINUTES, MAX_REQUEST_MINUTES),
    message=Schema(
        type=[OpenAPIType.STRING, OpenAPIType.NULL], max_length=MAX_REQUEST_MESSAGE, pattern=NO_NUL
    ),
    profile_id=Schema(
        type=OpenAPIType.INTEGER,
        minimum=1,
        maximum=2**63 - 1,
        description="Required with a parent's token; a session or device token implies it",
    ),
)
APPROVE_BODY = _body(
    [],
    minutes=Schema(
        type=[OpenAPIType.INTEGER, OpenAPIType.NULL],
        minimum=MIN_BONUS_MINUTES,
        maximum=MAX_BONUS_MINUTES,
        description="Minutes granted; null or absent: the minutes asked for",
    ),
)
TIME_REQUEST_QUERY = {
    "page": _whole(1, 999_999_999),
    "limit": _whole(1, 100),
    "status": Schema(type=OpenAPIType.STRING, enum=["approved", "denied", "pending"]),
}
# A day of the ledger: a local date or ``today``.
DAY = Schema(
    type=OpenAPIType.STRING,
    pattern="^(today|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8]))$",
    description="YYYY-MM-DD (the profile's local day) or today",
)


def ledger_day(operation: Operation) -> None:
    """The ledger's ``day`` path parameter: a local date or ``today``."""
    for parameter in operation.parameters or []:
        if isinstance(parameter, Parameter) and parameter.name == "day":
            parameter.schema = DAY


# Query numbers the handlers read as text (to answer with the seed's messages): what they take.
PAGING = {"page": _whole(1, 999_999_999), "limit": _whole(1, MAX_PAGE_LIMIT)}
EVENT_QUERY = {"limit": _whole(1, MAX_FEED_LIMIT), "after": _whole(0)}


def header(schema: Schema, description: str, required: bool = False) -> OpenAPIHeader:
    return OpenAPIHeader(schema=schema, description=description, required=required)


def stream_responses(operation: Operation) -> None:
    """Bytes of the video's own type, whole (200) or a range (206), or a redirect (302)."""
    video = {"video/*": OpenAPIMediaType(schema=BINARY)}
    ranges = header(STRING, "bytes", True)
    responses = operation.responses or {}
    responses["200"] = OpenAPIResponse(
        description="The whole file", content=video, headers={"Accept-Ranges": ranges}
    )
    responses["206"] = OpenAPIResponse(
        description="The requested byte range",
        content=video,
        headers={"Accept-Ranges": ranges, "Content-Range": header(STRING, "bytes a-b/size", True)},
    )
    responses["302"] = OpenAPIResponse(
        description="The video only has an external url",
        headers={"Location": header(STRING, "The video's url", True)},
    )
    operation.responses = responses


def thumbnail_responses(operation: Operation) -> None:
    """The stored image (its own type), cacheable by the caller only, or 304 when unchanged."""
    headers: dict[str, OpenAPIHeader | Reference] = {
        "Cache-Control": header(STRING, "private, max-age=86400", True),
        "ETag": header(STRING, "The stored image's tag (send it as If-None-Match)", True),
        "X-Content-Type-Options": header(STRING, "nosniff", True),
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


def export_response(operation: Operation) -> None:
    """One JSON document, streamed as it is read, to be saved as a file."""
    responses = operation.responses or {}
    responses["200"] = OpenAPIResponse(
        description="The caller's data: one member per section, each a list of rows",
        content={"application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT))},
        headers={
            "Content-Disposition": header(STRING, 'attachment; filename="medio-export.json"', True)
        },
    )
    operation.responses = responses


def upload_body(operation: Operation) -> None:
    """A multipart form: the video, its thumbnail and its details."""
    content = {"multipart/form-data": OpenAPIMediaType(schema=UPLOAD_BODY)}
    operation.request_body = RequestBody(content=content, required=True)
