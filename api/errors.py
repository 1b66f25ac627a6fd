"""The one place errors become responses, in the two documented shapes (CONTRACT §2).

* progress family (the routes that declare ``errors="progress"``, ``api/route_facts.py``, and
  unrouted paths under theirs): ``{"error": msg}`` and
  ``{"error": "Validation failed", "details": {field: msg}}``
* Medio family (every other route): ``{"error": {message, status, timestamp, requestId}}`` and
  ``{"errors": [{type, msg, path, location}]}`` for field validation.

Handlers raise the exceptions below (or Litestar's); nothing else builds error JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy.exc
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap, Receive, Scope, Send

from api.request_id import request_id_of
from api.route_facts import FACTS, Family, facts_of, handlers_of
from domain.timestamps import iso_ms
from services.health import REDIS_DOWN
from services.idempotency import AlreadyAnswered, KeyReused

log = logging.getLogger("medio.api")

Location = Literal["body", "query", "params"]


class ApiError(Exception):
    """An error with a status and a message meant for the client."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class FieldError:
    """One invalid field, with the seed's message for it."""

    path: str
    msg: str
    location: Location = "body"


class InvalidFields(Exception):
    """Input failed validation; rendered as the route family's validation shape (400)."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{e.path}: {e.msg}" for e in errors))
        self.errors = list(errors)


class SpecialError(Exception):
    """A response with a body fixed by the seed (daily limit 403, rate limit 429, 413)."""

    def __init__(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(str(body.get("message", status)))
        self.status = status
        self.body = dict(body)
        self.headers = dict(headers or {})


FAMILIES = "error_families"  # app.state: the path prefixes of each non-default family


def route_families(routes: Sequence[Any]) -> list[tuple[str, Family]]:
    """Each declared family's path prefixes (the static part of its routes' paths), so that an
    unrouted path under them (a 404 or 405 of the router) answers in their family too."""
    found: dict[str, Family] = {}
    for route in routes:
        for handler in handlers_of(route):
            family = facts_of(handler).errors
            if family != "medio":
                found[route.path.split("{", 1)[0].rstrip("/")] = family
    return sorted(found.items(), key=lambda item: len(item[0]))


def family_of(scope: Scope) -> Family:
    """The error family of a request: its route's, else that of the routes its path is under."""
    handler = scope.get("route_handler")
    if handler is not None and FACTS in handler.opt:
        family: Family = facts_of(handler).errors
        return family
    app = scope.get("app")
    path = scope.get("path", "")
    for prefix, family in getattr(app.state, FAMILIES, ()) if app is not None else ():
        if path == prefix or path.startswith(prefix + "/"):
            return family
    return "medio"


def error_body(family: Family, status: int, message: str, request_id: str) -> dict[str, Any]:
    """The family's plain error body; also used by middleware that answers before routing."""
    if family == "progress":
        return {"error": message}
    return {
        "error": {
            "message": message,
            "status": status,
            "timestamp": iso_ms(datetime.now(UTC)),
            "requestId": request_id,
        }
    }


def _respond(
    request: Request[Any, Any, Any],
    status: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
) -> Response[Any]:
    all_headers = {"X-Request-ID": request_id_of(request.scope), **(headers or {})}
    return Response(
        content=body, status_code=status, headers=all_headers, media_type="application/json"
    )


def _validation_body(family: Family, errors: Sequence[FieldError]) -> dict[str, Any]:
    if family == "progress":
        return {"error": "Validation failed", "details": {e.path: e.msg for e in errors}}
    return {
        "errors": [
            {"type": "field", "msg": e.msg, "path": e.path, "location": e.location} for e in errors
        ]
    }


def _from_litestar_validation(exc: ValidationException) -> list[FieldError] | None:
    """Field errors Litestar found while parsing parameters or a body, if it named fields."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = []
    for item in extra:
        if not isinstance(item, dict) or not item.get("key"):
            return None
        source = item.get("source")
        location: Location = (
            "query" if source == "query" else "params" if source == "path" else "body"
        )
        errors.append(
            FieldError(str(item["key"]), str(item.get("message", "Invalid value")), location)
        )
    return errors or None


def handle_invalid_fields(request: Request[Any, Any, Any], exc: InvalidFields) -> Response[Any]:
    return _respond(request, 400, _validation_body(family_of(request.scope), exc.errors))


def handle_special(request: Request[Any, Any, Any], exc: SpecialError) -> Response[Any]:
    return _respond(request, exc.status, exc.body, exc.headers)


def handle_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    family = family_of(request.scope)
    body = error_body(family, exc.status, exc.message, request_id_of(request.scope))
    return _respond(request, exc.status, body, exc.headers)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    family = family_of(request.scope)
    if isinstance(exc, ValidationException):
        fields = _from_litestar_validation(exc)
        if fields:
            return _respond(request, 400, _validation_body(family, fields))
    status = exc.status_code
    message = _client_message(status, exc.detail)
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
    return _respond(
        request, status, error_body(family, status, message, request_id_of(request.scope)), headers
    )


def handle_already_answered(request: Request[Any, Any, Any], exc: AlreadyAnswered) -> Response[Any]:
    """A twin of this request committed first (``services.idempotency``): its answer, replayed."""
    answer = exc.answer
    return _respond(
        request,
        answer.status,
        answer.body.encode() or None,
        {"Idempotent-Replayed": "true"},
    )


def handle_key_reused(request: Request[Any, Any, Any], exc: KeyReused) -> Response[Any]:
    return handle_api_error(request, ApiError(422, str(exc)))


def handle_store_down(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A backing store refused or dropped the connection: 503, and the request can be retried."""
    request_id = request_id_of(request.scope)
    log.warning("store unavailable: %s", type(exc).__name__, extra={"request_id": request_id})
    message = "Service unavailable, please retry"
    body = error_body(family_of(request.scope), 503, message, request_id)
    return _respond(request, 503, body, {"Retry-After": "1"})


# SQLSTATEs of a database that is unreachable or refusing work, not of a bad query: connection
# exceptions (08), insufficient resources (53), operator intervention such as shutdown or
# terminated sessions (57P), and 55000, which Postgres answers when a database does not accept
# connections (ALLOW_CONNECTIONS false, e.g. during maintenance).
UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "55000")


def handle_database_error(
    request: Request[Any, Any, Any], exc: sqlalchemy.exc.DBAPIError
) -> Response[Any]:
    """503 when the database is unavailable (asyncpg reports most of that as plain ``Error``)."""
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    if exc.connection_invalidated or sqlstate.startswith(UNAVAILABLE_SQLSTATES):
        return handle_store_down(request, exc)
    return handle_unexpected(request, exc)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    request_id = request_id_of(request.scope)
    log.exception("unhandled error", extra={"request_id": request_id})
    body = error_body(family_of(request.scope), 500, "Internal server error", request_id)
    return _respond(request, 500, body)


MSG_MALFORMED_JSON = "Malformed JSON body"

_DEFAULT_MESSAGES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Too many requests. Please try again later.",
    503: "Service unavailable",
}


def _client_message(status: int, detail: str) -> str:
    """Litestar's detail when it is meant for clients; never internals on a 5xx."""
    if status >= 500 and status != 503:
        return "Internal server error"
    if status == 400 and detail.lower().startswith(("validation failed", "malformed", "json")):
        return (
            MSG_MALFORMED_JSON
            if "json" in detail.lower() or "malformed" in detail.lower()
            else detail
        )
    if status == 404:
        return "Not found"
    if status == 405:
        return "Method not allowed"
    return detail or _DEFAULT_MESSAGES.get(status, "Error")


def client_error_status(exc: Exception) -> int | None:
    """The status of an error meant for the client (below 500), else ``None``."""
    if isinstance(exc, ApiError | SpecialError):
        status = exc.status
    elif isinstance(exc, InvalidFields):
        status = 400
    elif isinstance(exc, HTTPException):
        status = exc.status_code
    else:
        return None
    return status if status < 500 else None


async def send_error(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer ``exc`` as the app's exception handling would, for a raw ASGI handler's layer
    that needs to see the answer (``api.idempotency`` keeps it)."""
    handler = next(exception_handlers[c] for c in type(exc).__mro__ if c in exception_handlers)
    request: Request[Any, Any, Any] = Request(scope, receive, send)
    response = handler(request, exc)
    await response.to_asgi_response(app=None, request=request)(scope, receive, send)


exception_handlers: ExceptionHandlersMap = {
    InvalidFields: handle_invalid_fields,
    SpecialError: handle_special,
    AlreadyAnswered: handle_already_answered,
    KeyReused: handle_key_reused,
    ApiError: handle_api_error,
    HTTPException: handle_http_exception,
    **dict.fromkeys(REDIS_DOWN, handle_store_down),
    sqlalchemy.exc.OperationalError: handle_store_down,
    sqlalchemy.exc.InterfaceError: handle_store_down,
    sqlalchemy.exc.DBAPIError: handle_database_error,
    ConnectionError: handle_store_down,
    Exception: handle_unexpected,
}
