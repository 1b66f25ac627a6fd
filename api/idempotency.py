"""``Idempotency-Key`` (CONTRACT §12), the HTTP half: replays, 409, 422, and what is stored.

A route opts in with one line, ``middleware=[Idempotent(REDIS_ANSWERS)]`` (its effect is an
event) or ``Idempotent(SQL_ANSWERS)`` (its effect is a row), and hands
``receipt_of(scope, render)`` to its command, which stores the answer with its effect
(``services.idempotency``). A raw ASGI handler calls ``run_once`` itself, only when the header is
there, so its path without the header stays as it was.

For a request with the header this layer, after the guards (rate limit, CSRF, body limits):

1. names the caller: the token's ``sub``, the hash of a session token, or on a public route
   without a credential the client IP as the rate limiter sees it; a request with no usable
   credential runs as if it had no key (the route answers 401, which is not stored);
2. checks the key (400), then looks up an answer: the same request gets it again with
   ``Idempotent-Replayed: true``, another request under the same key 422;
3. claims the running marker (409 while a twin runs), runs the route, and keeps a non-5xx
   answer the route did not store itself (an error, which changed nothing).

The fingerprint covers the method, path, query and body. A JSON body is read whole first (by
the body guard, which has its limits); a multipart upload is hashed as the route streams it,
and an answer given before all of it was read is not kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from api.auth import bearer_token
from api.deps import header_value, services_of
from api.errors import ApiError, client_error_status, send_error
from api.limits import replay
from api.multipart_stream import boundary_of
from api.ratelimit import ClientAddress
from api.route_facts import facts_of
from domain.devices import is_device_token, secret_hash
from services.idempotency import (
    MAX_STORED_BODY,
    Answer,
    AnswerStore,
    KeyRef,
    KeyReused,
    Receipt,
    claim_running,
    key_ref,
    release_running,
)
from services.sessions import hash_token, is_session_token

R = TypeVar("R")

HEADER = b"idempotency-key"
REPLAYED = (b"idempotent-replayed", b"true")
MAX_KEY_LENGTH = 255
RUNNING_SECONDS = 60  # how long a request that died before answering blocks its twins (409)
MSG_KEY = "Idempotency-Key must be 1-255 printable ASCII characters"
MSG_RUNNING = "A request with this Idempotency-Key is still being processed"
MSG_REUSED = str(KeyReused())
_PENDING = "idempotency"  # scope["state"] key of the request's ``Pending``


def checked_key(value: str) -> str:
    """The key, or 400 (in the route's error family)."""
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in value):
        raise ApiError(400, MSG_KEY)
    return value


class Fingerprint:
    """SHA-256 of the method, path, query and body; the body is hashed as the route reads it.

    A multipart body is hashed without its boundary, which a client picks anew for each
    request it builds, also for a retry of the same form.
    """

    def __init__(self, scope: Scope) -> None:
        self._hash = hashlib.sha256()
        method = str(scope.get("method"))
        for part in (method, scope["path"], scope.get("query_string", b"").decode()):
            self._hash.update(part.encode() + b"\0")
        self.complete = False
        self._boundary = _boundary(header_value(scope, b"content-type"))
        self._carry = b""  # the end of the last chunk, which may hold part of a boundary

    @property
    def streams(self) -> bool:
        """Whether the body is a (possibly large) form, hashed as the route reads it."""
        return bool(self._boundary)

    def reading(self, receive: Receive) -> Receive:
        async def receive_hashed() -> ReceiveMessage:
            message = await receive()
            if message["type"] == "http.request" and not self.complete:
                self._update(message.get("body", b""), not message.get("more_body", False))
            return message

        return receive_hashed

    def whole(self, body: bytes) -> None:
        self._update(body, True)

    def _update(self, chunk: bytes, last: bool) -> None:
        self.complete = last
        if not self._boundary:
            self._hash.update(chunk)
            return
        data = (self._carry + chunk).replace(self._boundary, b"")
        cut = len(data) if last else max(0, len(data) - len(self._boundary) + 1)
        self._hash.update(data[:cut])
        self._carry = data[cut:]

    async def drain(self, receive: Receive) -> None:
        """Read (and hash) what is left of the body."""
        while not self.complete:
            if (await receive())["type"] != "http.request":
                return

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _boundary(content_type: str | None) -> bytes:
    if not content_type or not content_type.lower().startswith("multipart/"):
        return b""
    try:
        return boundary_of(content_type)
    except ApiError:
        return b""


@dataclass(frozen=True)
class Pending:
    """A request that holds its key's running marker and has no answer yet."""

    ref: KeyRef
    fingerprint: Fingerprint


def receipt_of(scope: Scope, render: Callable[[R], tuple[int, bytes]]) -> Receipt[R] | None:
    """What the route's command stores with its effect (``None`` without a key).

    Call it once the body has been read: the receipt carries the body's fingerprint.
    """
    pending: Pending | None = scope["state"].get(_PENDING)
    if pending is None:
        return None
    return Receipt(pending.ref, pending.fingerprint.hexdigest(), render)


def fixed_answer(status: int, body: bytes = b"") -> Callable[[Any], tuple[int, bytes]]:
    """A ``receipt_of`` render for a route whose answer does not depend on its command's result
    (known before the command runs)."""
    return lambda _result: (status, body)


def _addresses(state: State) -> ClientAddress:
    guards = state.guards
    if guards.rate_limit is not None:
        return guards.rate_limit.addresses  # type: ignore[no-any-return]
    if "client_addresses" not in state:
        settings = services_of(state).container.settings
        state.client_addresses = ClientAddress(settings.trusted_proxies)
    return state.client_addresses  # type: ignore[no-any-return]


async def caller_of(scope: Scope) -> str | None:
    """Whose key this is, or ``None`` when the request has no usable credential."""
    token = header_value(scope, b"x-session-token") or bearer_token(
        header_value(scope, b"authorization")
    )
    state = scope["app"].state
    if token is not None:
        if is_session_token(token):
            return "session:" + hash_token(token)
        if is_device_token(token):  # checked by the route itself (``api.deps.device_of``)
            return "device:" + secret_hash(token)
        try:
            return "sub:" + (await services_of(state).verifier.verify(token)).sub
        except ApiError:
            return None
    if facts_of(scope.get("route_handler")).public:
        return "ip:" + _addresses(state).of(scope)
    return None


class _Recorder:
    """The route's answer as it is sent: status and (small) body."""

    def __init__(self, send: Send) -> None:
        self.downstream = send
        self.status = 500
        self.replayed = False
        self.body = bytearray()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.replayed = REPLAYED in message.get("headers", ())
        elif message["type"] == "http.response.body" and len(self.body) <= MAX_STORED_BODY:
            self.body.extend(message.get("body", b""))
        await self.downstream(message)

    def keepable(self) -> bool:
        return self.status < 500 and not self.replayed and len(self.body) <= MAX_STORED_BODY


async def send_answer(send: Send, answer: Answer) -> None:
    """The stored answer again, marked as a replay."""
    body = answer.body.encode()
    headers = [REPLAYED, (b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def run_once(
    scope: Scope, receive: Receive, send: Send, app: ASGIApp, store: AnswerStore
) -> None:
    """Serve a request that may carry an ``Idempotency-Key`` (see the module docstring)."""
    value = header_value(scope, HEADER)
    caller = await caller_of(scope) if value is not None else None
    if value is None or caller is None:
        await app(scope, receive, send)
        return
    ref = key_ref(caller, checked_key(value))
    fingerprint, receive = await _fingerprinted(scope, receive)
    container = services_of(scope["app"].state).container
    answer = await store.get(container, ref)
    token = None if answer else await claim_running(container, ref.digest, RUNNING_SECONDS)
    if token is None:
        answer = answer or await store.get(container, ref)  # the twin may have just finished
        if answer is None:
            raise ApiError(409, MSG_RUNNING, {"Retry-After": "1"})
        await fingerprint.drain(receive)
        if answer.fingerprint != fingerprint.hexdigest():
            raise ApiError(422, MSG_REUSED)
        await send_answer(send, answer)
        return
    scope["state"][_PENDING] = Pending(ref, fingerprint)
    try:
        kept = await _answered(scope, receive, send, app, fingerprint)
        if kept is not None:
            await store.keep(container, ref, kept)
    finally:
        await release_running(container, ref.digest, token)


async def _fingerprinted(scope: Scope, receive: Receive) -> tuple[Fingerprint, Receive]:
    """The request's fingerprint, and ``receive`` for the route (which the fingerprint sees)."""
    fingerprint = Fingerprint(scope)
    if fingerprint.streams:
        return fingerprint, fingerprint.reading(receive)
    # A JSON body, read whole (and checked) by the body guard, is hashed before the route runs.
    body = await scope["app"].state.guards.body.read(scope, receive)
    fingerprint.whole(body)
    return fingerprint, replay(body, receive)


async def _answered(
    scope: Scope, receive: Receive, send: Send, app: ASGIApp, fingerprint: Fingerprint
) -> Answer | None:
    """Run the route; its answer if it is one to keep (non-5xx, not a replay, body all read)."""
    recorder = _Recorder(send)
    try:
        await app(scope, receive, recorder.send)
    except Exception as exc:  # a raw ASGI handler's 4xx: answered here, so it can be kept
        if client_error_status(exc) is None:
            raise
        await send_error(scope, receive, recorder.send, exc)
    if not (recorder.keepable() and fingerprint.complete):
        return None
    try:
        return Answer(fingerprint.hexdigest(), recorder.status, recorder.body.decode())
    except UnicodeDecodeError:
        return None


class Idempotent(ASGIMiddleware):
    """Route middleware: ``@post(..., middleware=[Idempotent(SQL_ANSWERS)])``."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, store: AnswerStore) -> None:
        self.store = store

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        await run_once(scope, receive, send, next_app, self.store)
