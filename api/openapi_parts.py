"""The parts of the OpenAPI document that routes declare on themselves (``api/route_facts.py``):
schemas of the JSON bodies and query numbers that handlers read raw (to answer with the seed's
messages), and the hooks that describe what a media route answers. ``api/openapi.py`` applies
them; this module imports nothing of the app, so any controller may import it.
"""

from __future__ import annotations

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

from domain.catalog import MAX_DESCRIPTION, MAX_PAGE_LIMIT, MAX_TITLE
from domain.devices import MAX_NAME_LENGTH
from domain.history import MAX_FEED_LIMIT
from domain.policy import (
    MAX_REQUEST_MESSAGE,
    MAX_REQUEST_MINUTES,
    MIN_REQUEST_MINUTES,
)
from domain.text import NO_NUL, stripped_pattern

STRING = Schema(type=OpenAPIType.STRING)
INTEGER = Schema(type=OpenAPIType.INTEGER)
NUMBER = Schema(type=OpenAPIType.NUMBER)
BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)


def ref(name: str) -> Reference:
    return Reference(ref=f"#/components/schemas/{name}")


UPLOAD_BODY = Schema(
    type=OpenAPIType.OBJECT,
    properties={
        "video": BINARY,
        "thumbnail": BINARY,
        "title": Schema(type=OpenAPIType.STRING, min_length=1, max_length=MAX_TITLE),
        "description": Schema(type=OpenAPIType.STRING, max_length=MAX_DESCRIPTION),
        "duration": Schema(type=OpenAPIType.STRING, pattern="^[0-9]{1,10}$"),
    },
    required=["title", "video"],
)


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


NAME = Schema(type=OpenAPIType.STRING, pattern=stripped_pattern(1, MAX_NAME_LENGTH))
# The device's token polling and the parent's confirmation (CONTRACT §14): a made-up code is a
# 400, but every string is one the handlers read.
DEVICE_TOKEN = _body(["device_code"], device_code=Schema(type=OpenAPIType.STRING, pattern=NO_NUL))
DEVICE_CONFIRM = _body(
    ["name", "user_code"],
    name=NAME,
    user_code=Schema(type=OpenAPIType.STRING, pattern=NO_NUL, description="XXXX-XXXX, as shown"),
)
# The child's request for more time (CONTRACT §13): read as JSON, since whether ``profile_id``
# is needed depends on the token.
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
