"""``/api/sessions``: watch sessions (seed 004, CONTRACT §7).

A parent's app starts a session with its bearer token; a paired device with its device token,
for its own profile only (CONTRACT §14); a kids-mode device starts one on the public route
(profiles whose parent turned ``kids_mode`` on) and gets a ``session_token``. Heartbeat, end and
read accept the parent's bearer token, the device token of the session's profile, or that
session token (as ``Authorization: Bearer`` or ``X-Session-Token``). A session that is not the
caller's is 404.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody
from litestar.types import Scope
from msgspec import Meta

from api.auth import bearer_token, unauthorized
from api.deps import (
    ContainerDep,
    PrincipalDep,
    Services,
    authenticate,
    device_of,
    header_value,
    principal_of,
    services_of,
)
from api.errors import MSG_MALFORMED_JSON, ApiError, FieldError, InvalidFields, SpecialError
from api.fast import Auth, Body, Call, Endpoint, fast_route
from api.idempotency import Idempotent, fixed_answer, receipt_of
from api.route_facts import RouteFacts, facts
from domain.catalog import Profile, Video
from domain.devices import Device, is_device_token
from domain.numbers import json_integer
from domain.sessions import (
    MAX_POSITION_SECONDS,
    MS_PER_SECOND,
    SessionState,
    Transition,
    duration_minutes,
    position_problem,
    whole_minutes,
)
from domain.timestamps import iso_ms
from services import catalog, sessions
from services.container import Container
from services.idempotency import REDIS_ANSWERS, Receipt
from services.sessions import Caller, Started

SESSION_TOKEN_HEADER = "x-session-token"
REFUSAL_MESSAGES = {
    "daily_limit": "Daily watch limit exceeded",
    "bedtime": "Bedtime",
    "locked": "Watching is paused by a parent",
    "age_rating": "Video not allowed for this profile",
}
MSG_ID = "{} must be a positive integer"
MSG_OTHER_PROFILE = "This device may start sessions for its own profile only"
MAX_ID = 2**63 - 1

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class SessionStart(msgspec.Struct, frozen=True):
    """A start's body (parsed by ``_ids``, which names each bad field with the seed's message)."""

    profile_id: Annotated[int, Meta(ge=1, le=MAX_ID)]
    video_id: Annotated[int, Meta(ge=1, le=MAX_ID)]


class StartOut(msgspec.Struct, frozen=True):
    session_id: int
    profile_id: int
    video_id: int
    started_at: str
    daily_limit_minutes: int
    watched_today_minutes: int
    remaining_minutes: int
    session_token: str


class PublicStartOut(msgspec.Struct, frozen=True):
    session_id: int
    remaining_minutes: int
    session_token: str


class HeartbeatIn(msgspec.Struct, frozen=True):
    """A heartbeat's optional body: the player's position in the video."""

    position: Annotated[float, Meta(ge=0, le=MAX_POSITION_SECONDS)] | None = None


class HeartbeatOut(msgspec.Struct, frozen=True):
    """``status``: ``active``, ``limit_reached``, ``bedtime`` or ``stopped``; ``ends_at`` and
    ``warning`` (CONTRACT §13) say when the session will be ended if nothing changes."""

    status: str
    session_id: int
    last_heartbeat: str
    remaining_minutes: int
    ends_at: str | None
    warning: str | None


class StopOut(msgspec.Struct, frozen=True):
    session_id: int
    status: str  # "stopping": the next heartbeat ends it


class EndOut(msgspec.Struct, frozen=True):
    session_id: int
    duration_minutes: float
    ended_at: str


class SessionOut(msgspec.Struct, frozen=True):
    """``GET /api/sessions/:id`` (additive): the session's current state."""

    session_id: int
    profile_id: int
    video_id: int
    status: str  # active | ended
    started_at: str
    last_heartbeat: str | None
    ended_at: str | None
    end_reason: str | None
    duration_minutes: float | None
    watched_seconds: float
    position: float | None
    daily_limit_minutes: int


def _ids(data: Any) -> tuple[int, int]:
    """``profile_id`` and ``video_id`` from a start body, or 400 naming each bad field."""
    if not isinstance(data, dict):
        raise ApiError(400, "Request body must be a JSON object")
    problems = []
    ids = []
    for name in ("profile_id", "video_id"):
        value = json_integer(data.get(name))
        if value is None or not 1 <= value <= MAX_ID:
            problems.append(FieldError(name, MSG_ID.format(name)))
        ids.append(value or 0)
    if problems:
        raise InvalidFields(problems)
    return ids[0], ids[1]


def _device_ids(data: Any, device: Device) -> tuple[int, int]:
    """A device's start body: ``video_id``, and ``profile_id`` only if it is the device's own."""
    if isinstance(data, dict) and data.get("profile_id") is None:
        data = {**data, "profile_id": device.profile_id}
    profile_id, video_id = _ids(data)
    if profile_id != device.profile_id:
        raise ApiError(403, MSG_OTHER_PROFILE)
    return profile_id, video_id


def _position(body: bytes) -> float | None:
    """The optional ``{position: seconds}`` of a heartbeat's body."""
    data = _json_body(body)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ApiError(400, "Request body must be a JSON object")
    position = data.get("position")
    if problem := position_problem(position):
        raise InvalidFields([FieldError("position", problem)])
    return None if position is None else float(position)


async def _caller(
    services: Services, session_id: int, session_token: str | None, authorization: str | None
) -> Caller:
    """The session's own token (either header), else the parent's bearer JWT, else 401."""
    token = session_token or bearer_token(authorization)
    if token is None:
        raise unauthorized()
    if sessions.is_session_token(token):
        hashed = sessions.hash_token(token)
        return Caller(token_hash=hashed, actor=f"session:{session_id}")
    if is_device_token(token):
        device = await device_of(services.container, token)
        return Caller(
            user_id=device.user_id, profile_id=device.profile_id, actor=f"device:{device.device_id}"
        )
    principal = await principal_of(services, token)
    return Caller(user_id=principal.user_id, actor=principal.sub)


async def _request_caller(request: Request[Any, Any, Any], session_id: int) -> Caller:
    headers = request.headers
    return await _caller(
        services_of(request.app.state),
        session_id,
        headers.get(SESSION_TOKEN_HEADER),
        headers.get("authorization"),
    )


def _json_body(body: bytes) -> Any:
    """The decoded body (``None`` when empty); the guards have checked type, size and depth."""
    if not body:
        return None
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):
        raise ApiError(400, MSG_MALFORMED_JSON) from None


def _not_found() -> ApiError:
    return ApiError(404, "Session not found")


def _ended() -> ApiError:
    return ApiError(409, "Session has already ended")


async def _start(
    container: Container,
    profile: Profile,
    video: Video,
    *,
    public: bool,
    actor: str,
    receipt: Receipt[Started] | None,
    device_id: int | None = None,
) -> Started:
    try:
        return await sessions.start_session(
            container,
            profile,
            video,
            public=public,
            actor=actor,
            receipt=receipt,
            device_id=device_id,
        )
    except sessions.StartRefused as exc:
        raise SpecialError(403, _refusal_body(exc, public)) from None


def _refusal_body(refused: sessions.StartRefused, public: bool) -> dict[str, Any]:
    """The 403 body of a refused start (CONTRACT §13), one per ``reason``."""
    reason = refused.refusal.reason
    allowed_at = refused.refusal.allowed_at
    body: dict[str, Any] = {"message": REFUSAL_MESSAGES[reason]}
    if reason == "daily_limit":
        body["limit_minutes"] = refused.limit_minutes
        body["watched_minutes"] = refused.watched_minutes
    if not public:  # an anonymous kids-mode caller learns no names
        body["profile_name"] = refused.profile_name
    body["reason"] = reason
    if reason in ("bedtime", "locked"):
        body["allowed_at"] = iso_ms(allowed_at) if allowed_at else None
    return body


def _start_out(started: Started) -> StartOut:
    state = started.state
    return StartOut(
        session_id=state.session_id,
        profile_id=state.profile_id,
        video_id=state.video_id,
        started_at=iso_ms(state.started_at),
        daily_limit_minutes=state.daily_limit_minutes,
        watched_today_minutes=whole_minutes(started.watched_today_ms),
        remaining_minutes=started.remaining_minutes,
        session_token=started.session_token,
    )


def _public_start_out(started: Started) -> PublicStartOut:
    return PublicStartOut(
        session_id=started.state.session_id,
        remaining_minutes=started.remaining_minutes,
        session_token=started.session_token,
    )


def _end_out(state: SessionState) -> EndOut:
    assert state.ended_at is not None
    return EndOut(
        session_id=state.session_id,
        duration_minutes=duration_minutes(state.started_at, state.ended_at),
        ended_at=iso_ms(state.ended_at),
    )


# What a retry with the same Idempotency-Key gets again, rendered inside the atomic step.
def _answer_start(started: Started) -> tuple[int, bytes]:
    return 201, _encoder.encode(_start_out(started))


def _answer_public_start(started: Started) -> tuple[int, bytes]:
    return 201, _encoder.encode(_public_start_out(started))


def _answer_end(transition: Transition) -> tuple[int, bytes]:
    return 200, _encoder.encode(_end_out(transition.state))


def _session_out(state: SessionState) -> SessionOut:
    return SessionOut(
        session_id=state.session_id,
        profile_id=state.profile_id,
        video_id=state.video_id,
        status="active" if state.active else "ended",
        started_at=iso_ms(state.started_at),
        last_heartbeat=iso_ms(state.last_heartbeat) if state.last_heartbeat else None,
        ended_at=iso_ms(state.ended_at) if state.ended_at else None,
        end_reason=state.end_reason,
        duration_minutes=(
            duration_minutes(state.started_at, state.ended_at) if state.ended_at else None
        ),
        watched_seconds=state.watched_ms / MS_PER_SECOND,
        position=state.position,
        daily_limit_minutes=state.daily_limit_minutes,
    )


class SessionsController(Controller):
    """Start, beat, end and read watch sessions."""

    path = "/api/sessions"
    tags = ["sessions"]

    @post(
        "/start",
        status_code=201,
        summary="Start a watch session (parent's token, or a paired device's for its profile)",
        opt=facts(ids_in_body=True, json_body=SessionStart),
        middleware=[Idempotent(REDIS_ANSWERS)],
    )
    async def start(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        data: JSONBody[Any] = None,
    ) -> StartOut:
        token = bearer_token(request.headers.get("authorization"))
        device = await device_of(container, token) if token and is_device_token(token) else None
        if device is not None:
            user_id, actor = device.user_id, f"device:{device.device_id}"
            profile_id, video_id = _device_ids(data, device)
        else:
            principal = await authenticate(request, token)
            user_id, actor = principal.user_id, principal.sub
            profile_id, video_id = _ids(data)
        profile = await catalog.get_profile(container, user_id, profile_id)
        if profile is None:
            raise ApiError(404, "Profile not found")
        video = await catalog.get_video(container, user_id, video_id)
        if video is None:
            raise ApiError(404, "Video not found")
        receipt = receipt_of(request.scope, _answer_start)
        started = await _start(
            container,
            profile,
            video,
            public=False,
            actor=actor,
            receipt=receipt,
            device_id=device.device_id if device else None,
        )
        return _start_out(started)

    @post(
        "/start/public",
        status_code=201,
        summary="Start a session in kids mode (no login)",
        opt=facts(policy="public", public=True, ids_in_body=True, json_body=SessionStart),
        middleware=[Idempotent(REDIS_ANSWERS)],
    )
    async def start_public(
        self, request: Request[Any, Any, Any], container: ContainerDep, data: JSONBody[Any] = None
    ) -> PublicStartOut:
        profile_id, video_id = _ids(data)
        profile = await catalog.get_profile_unscoped(container, profile_id)
        if profile is None:
            raise ApiError(404, "Profile not found")
        if not profile.kids_mode:
            raise ApiError(403, "Kids mode is not enabled for this profile")
        video = await catalog.get_video(container, profile.user_id, video_id)
        if video is None:
            raise ApiError(404, "Video not found")
        receipt = receipt_of(request.scope, _answer_public_start)
        actor = f"kids-mode:profile:{profile.id}"
        started = await _start(container, profile, video, public=True, actor=actor, receipt=receipt)
        return _public_start_out(started)

    @post(
        "/{session_id:int}/end",
        status_code=200,
        summary="End a session",
        opt=facts(policy="telemetry", session_state=True, session_token=True),
        middleware=[Idempotent(REDIS_ANSWERS)],
    )
    async def end(
        self, request: Request[Any, Any, Any], container: ContainerDep, session_id: FromPath[int]
    ) -> EndOut:
        caller = await _request_caller(request, session_id)
        receipt = receipt_of(request.scope, _answer_end)
        try:
            state = await sessions.end_session(container, session_id, caller, receipt)
        except sessions.SessionNotFound:
            raise _not_found() from None
        except sessions.SessionOver:
            raise _ended() from None
        return _end_out(state)

    @post(
        "/{session_id:int}/stop",
        status_code=200,
        summary="Stop a running session (parent's token): its next heartbeat ends it",
        opt=facts(session_state=True),
        middleware=[Idempotent(REDIS_ANSWERS)],
    )
    async def stop(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        principal: PrincipalDep,
        session_id: FromPath[int],
    ) -> StopOut:
        stopping = StopOut(session_id=session_id, status="stopping")
        receipt = receipt_of(request.scope, fixed_answer(200, _encoder.encode(stopping)))
        try:
            await sessions.request_stop(
                container, session_id, principal.user_id, principal.sub, receipt
            )
        except sessions.SessionNotFound:
            raise _not_found() from None
        except sessions.SessionOver:
            raise _ended() from None
        return stopping

    @get("/{session_id:int}", summary="A session's current state", opt=facts(session_token=True))
    async def read(
        self, request: Request[Any, Any, Any], container: ContainerDep, session_id: FromPath[int]
    ) -> SessionOut:
        caller = await _request_caller(request, session_id)
        try:
            state = await sessions.get_session(container, session_id, caller)
        except sessions.SessionNotFound:
            raise _not_found() from None
        return _session_out(state)


async def _session_caller(services: Services, scope: Scope) -> Caller:
    return await _caller(
        services,
        int(scope["path_params"]["session_id"]),  # parsed by the router
        header_value(scope, SESSION_TOKEN_HEADER.encode()),
        header_value(scope, b"authorization"),
    )


SESSION_CALLER = Auth(_session_caller, ("bearer", "sessionToken"))


async def _heartbeat(call: Call[float | None]) -> HeartbeatOut:
    session_id: int = call.params["session_id"]  # parsed by the router
    try:
        beat = await sessions.heartbeat(call.services.container, session_id, call.caller, call.body)
    except sessions.SessionNotFound:
        raise _not_found() from None
    except sessions.SessionOver:
        raise _ended() from None
    last = beat.state.last_heartbeat or beat.state.started_at
    return HeartbeatOut(
        status=beat.status,
        session_id=session_id,
        last_heartbeat=iso_ms(last),
        remaining_minutes=beat.remaining_minutes,
        ends_at=iso_ms(beat.ends_at) if beat.ends_at else None,
        warning=beat.warning,
    )


# An ingest route, so a fast route like the progress save (``api/fast.py`` says why).
heartbeat = fast_route(
    "/api/sessions/{session_id:int}/heartbeat",
    Endpoint(
        "POST",
        _heartbeat,
        "Keep a session alive",
        RouteFacts(policy="telemetry", session_state=True, session_token=True),
        auth=SESSION_CALLER,
        answer=HeartbeatOut,
        body=Body(HeartbeatIn, _position, required=False),
        operation_id="ApiSessionsSessionIdHeartbeatHeartbeat",
    ),
    tags=["sessions"],
)
