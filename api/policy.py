"""Parental policy routes (CONTRACT §13): bonus, lock, time requests, the day's ledger.

Thin controllers: bodies checked here with the ``errors`` shape, every decision in
``services.policy`` / ``services.ledger``. A profile, session or request of another parent is
404, exactly like one that never existed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from api.auth import Principal, bearer_token, unauthorized
from api.bodies import checked_body
from api.catalog_schema import invalid, json_object, not_found, page_query
from api.deps import ContainerDep, PrincipalDep, device_of, principal_of, services_of
from api.errors import ApiError, SpecialError
from api.fast import PRINCIPAL, Call, Endpoint, fast_route
from api.idempotency import Idempotent, fixed_answer, receipt_of
from api.openapi_parts import (
    TIME_REQUEST_BODY,
    TIME_REQUEST_QUERY,
    ledger_day,
)
from api.route_facts import RouteFacts, facts
from domain import policy as rules
from domain.catalog import PageMetadata, Problem, Profile, page_metadata
from domain.devices import is_device_token
from domain.numbers import whole_in
from domain.policy import BonusCreate, LockCreate, TimeRequestApproval
from domain.timestamps import iso_ms
from services import catalog, ledger, policy, sessions
from services.idempotency import REDIS_ANSWERS
from services.policy import RequestStatus, TimeRequest

SESSION_TOKEN_HEADER = "x-session-token"
MSG_BONUS = (
    f"Minutes must be an integer between {rules.MIN_BONUS_MINUTES} and {rules.MAX_BONUS_MINUTES}"
)
MSG_UNTIL = "until must be null or an ISO-8601 time with its offset"
MSG_REQUEST_MINUTES = "Minutes must be an integer between 5 and 120"
MSG_MESSAGE = "Message must be text of at most 200 characters"
MSG_PROFILE_ID = "profile_id must be a positive integer"
MSG_STATUS = "Status must be pending, approved or denied"
MSG_DATE = "Date must be YYYY-MM-DD or today"
MSG_COOLDOWN = "A request was denied recently. Please try again later."
DEFAULT_LIMIT = 20


class BonusOut(msgspec.Struct, frozen=True):
    profile_id: int
    date: str
    bonus_minutes: int
    limit_minutes: int
    remaining_minutes: int


class LockOut(msgspec.Struct, frozen=True):
    profile_id: int
    locked: bool
    until: str | None


class TimeRequestOut(msgspec.Struct, frozen=True):
    request_id: int
    profile_id: int
    minutes: int
    message: str | None
    status: str
    created_at: str
    decided_at: str | None
    granted_minutes: int | None


class TimeRequestList(msgspec.Struct, frozen=True):
    time_requests: list[TimeRequestOut]
    metadata: PageMetadata


_encoder = msgspec.json.Encoder()


def _bonus_out(given: policy.Bonus) -> BonusOut:
    return BonusOut(
        given.profile_id,
        given.date,
        given.bonus_minutes,
        given.limit_minutes,
        given.remaining_minutes,
    )


def _answer_bonus(given: policy.Bonus) -> tuple[int, bytes]:
    return 201, _encoder.encode(_bonus_out(given))


def _answer_request(status: int) -> Callable[[TimeRequest], tuple[int, bytes]]:
    """What a time request's command stores with its effect under an ``Idempotency-Key``."""
    return lambda request: (status, _encoder.encode(_request_out(request)))


def _request_out(request: TimeRequest) -> TimeRequestOut:
    return TimeRequestOut(
        request_id=request.request_id,
        profile_id=request.profile_id,
        minutes=request.minutes,
        message=request.message,
        status=request.status,
        created_at=iso_ms(request.created_at),
        decided_at=iso_ms(request.decided_at) if request.decided_at else None,
        granted_minutes=request.granted_minutes,
    )


async def _own_profile(container: ContainerDep, user_id: int, profile_id: int) -> Profile:
    found = await catalog.get_profile(container, user_id, profile_id)
    if found is None:
        raise not_found("Profile")
    return found


def _check_bonus(body: dict[str, Any]) -> list[Problem]:
    minutes = whole_in(body.get("minutes"), rules.MIN_BONUS_MINUTES, rules.MAX_BONUS_MINUTES)
    return [Problem("minutes", MSG_BONUS)] if minutes is None else []


def _check_approval(body: dict[str, Any]) -> list[Problem]:
    return [] if body.get("minutes") is None else _check_bonus(body)


def _instant(value: str | None) -> datetime | None:
    """An ISO-8601 time with its offset, ``None`` for null, else a ``ValueError``."""
    if value is None:
        return None
    until = datetime.fromisoformat(value)
    if until.tzinfo is None:
        raise ValueError(value)
    return until  # a time already past locks nothing


def _check_lock(body: dict[str, Any]) -> list[Problem]:
    value = body.get("until")
    try:
        _instant(value if value is None or isinstance(value, str) else "?")
    except ValueError:
        return [Problem("until", MSG_UNTIL)]
    return []


class PolicyController(Controller):
    """A parent's actions on a profile's policy, and what the parent reads of a day."""

    path = "/api/profiles"
    tags = ["policy"]

    @post(
        "/{profile_id:int}/bonus",
        status_code=201,
        summary="Extra minutes for the profile's today",
        opt=facts(json_body=BonusCreate),
        dependencies={"grant": checked_body(BonusCreate, _check_bonus)},
        middleware=[Idempotent(REDIS_ANSWERS)],
    )
    async def bonus(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        principal: PrincipalDep,
        profile_id: FromPath[int],
        grant: NamedDependency[BonusCreate],
    ) -> BonusOut:
        profile = await _own_profile(container, principal.user_id, profile_id)
        receipt = receipt_of(request.scope, _answer_bonus)
        given = await policy.grant_bonus(container, profile, grant.minutes, principal.sub, receipt)
        return _bonus_out(given)

    @post(
        "/{profile_id:int}/lock",
        status_code=200,
        summary="Pause watching (until a time, or until unlocked)",
        opt=facts(json_body=LockCreate),
        dependencies={"pause": checked_body(LockCreate, _check_lock)},
        middleware=[Idempotent(REDIS_ANSWERS)],
    )
    async def lock(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        principal: PrincipalDep,
        profile_id: FromPath[int],
        pause: NamedDependency[LockCreate],
    ) -> LockOut:
        until = _instant(pause.until)
        profile = await _own_profile(container, principal.user_id, profile_id)
        locked = LockOut(profile.id, True, iso_ms(until) if until else None)
        receipt = receipt_of(request.scope, fixed_answer(200, _encoder.encode(locked)))
        await policy.set_lock(container, profile, until, principal.sub, receipt)
        return locked

    @delete(
        "/{profile_id:int}/lock",
        summary="Lift the lock",
        middleware=[Idempotent(REDIS_ANSWERS)],
    )
    async def unlock(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        principal: PrincipalDep,
        profile_id: FromPath[int],
    ) -> Response[None]:
        profile = await _own_profile(container, principal.user_id, profile_id)
        receipt = receipt_of(request.scope, fixed_answer(204))
        await policy.lift_lock(container, profile, principal.sub, receipt)
        return Response(content=None, status_code=204)

    @get(
        "/{profile_id:int}/time-requests",
        summary="The profile's requests for more time",
        opt=facts(query=TIME_REQUEST_QUERY),
    )
    async def list_requests(
        self,
        container: ContainerDep,
        principal: PrincipalDep,
        profile_id: FromPath[int],
        status: FromQuery[str | None] = None,
        page: FromQuery[str | None] = None,
        limit: FromQuery[str | None] = None,
    ) -> TimeRequestList:
        wanted = page_query(page, limit, DEFAULT_LIMIT)
        if status is not None and status not in ("pending", "approved", "denied"):
            raise invalid([Problem("status", MSG_STATUS)], "query")
        profile = await _own_profile(container, principal.user_id, profile_id)
        found = await policy.list_time_requests(container, profile, _status(status))
        shown = found[wanted.offset : wanted.offset + wanted.limit]
        return TimeRequestList([_request_out(r) for r in shown], page_metadata(wanted, len(found)))


def _cooldown(container: ContainerDep, wait: int) -> SpecialError:
    """429 after a denial, with the headers of every 429 (CONTRACT §8): the cooldown is a limit
    of one request per window, used up until it ends."""
    reset = math.ceil(container.clock.now().timestamp()) + wait
    headers = {
        "Retry-After": str(wait),
        "X-RateLimit-Limit": "1",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset),
    }
    return SpecialError(429, {"message": MSG_COOLDOWN, "retryAfter": wait}, headers)


def _status(status: str | None) -> RequestStatus | None:
    return status if status in ("pending", "approved", "denied") else None  # type: ignore[return-value]


class TimeRequestsController(Controller):
    """A child asks for more time (session or device token, or the parent for a profile);
    the parent approves or denies; the device polls the request."""

    path = "/api/time-requests"
    tags = ["policy"]

    @post(
        status_code=201,
        summary="Ask for more time (session or device token, or the parent's for a profile)",
        # 404: the profile named; 409: one already pending
        opt=facts(
            session_token=True, ids_in_body=True, session_state=True, json_body=TIME_REQUEST_BODY
        ),
        middleware=[Idempotent(REDIS_ANSWERS)],
    )
    async def ask(
        self, request: Request[Any, Any, Any], container: ContainerDep, data: JSONBody[Any] = None
    ) -> TimeRequestOut:
        token = request.headers.get(SESSION_TOKEN_HEADER) or bearer_token(
            request.headers.get("authorization")
        )
        if token is None:
            raise unauthorized()
        body = json_object(data)
        problems = []
        minutes = whole_in(
            body.get("minutes"), rules.MIN_REQUEST_MINUTES, rules.MAX_REQUEST_MINUTES
        )
        if minutes is None:
            problems.append(Problem("minutes", MSG_REQUEST_MINUTES))
        message = body.get("message")
        if message is not None and (
            not isinstance(message, str) or len(message) > rules.MAX_REQUEST_MESSAGE
        ):
            problems.append(Problem("message", MSG_MESSAGE))
        asker, actor = "", ""
        if sessions.is_session_token(token):
            asker = sessions.hash_token(token)
            session = await sessions.session_of_token(container, asker)
            if session is None:
                raise unauthorized("Invalid session token")
            profile = await catalog.get_profile(container, session.user_id, session.profile_id)
            actor = f"session:{session.session_id}"
        elif is_device_token(token):  # a paired device asks for its own profile
            device = await device_of(container, token)
            asker = sessions.hash_token(token)
            profile = await catalog.get_profile(container, device.user_id, device.profile_id)
            actor = f"device:{device.device_id}"
        else:
            principal = await principal_of(services_of(request.app.state), token)
            profile_id = whole_in(body.get("profile_id"), 1, 2**63 - 1)
            if profile_id is None:
                problems.append(Problem("profile_id", MSG_PROFILE_ID))
                raise invalid(problems)
            profile = await catalog.get_profile(container, principal.user_id, profile_id)
            actor = principal.sub
        if problems or minutes is None:
            raise invalid(problems)
        if profile is None:
            raise not_found("Profile")
        receipt = receipt_of(request.scope, _answer_request(201))
        try:
            asked = await policy.ask_for_time(
                container, profile, minutes, message, asker=asker, actor=actor, receipt=receipt
            )
        except policy.RequestPending:
            raise ApiError(409, "A request for this profile is already pending") from None
        except policy.RequestCooldown as exc:
            raise _cooldown(container, exc.retry_after) from None
        return _request_out(asked)

    @get(
        "/{request_id:int}",
        summary="One request (its parent, or the token that asked)",
        opt=facts(session_token=True),
    )
    async def read(
        self, request: Request[Any, Any, Any], container: ContainerDep, request_id: FromPath[int]
    ) -> TimeRequestOut:
        token = request.headers.get(SESSION_TOKEN_HEADER) or bearer_token(
            request.headers.get("authorization")
        )
        if token is None:
            raise unauthorized()
        user_id, asker = None, None
        if sessions.is_session_token(token):
            asker = sessions.hash_token(token)
        elif is_device_token(token):
            await device_of(container, token)  # 401 once revoked
            asker = sessions.hash_token(token)
        else:
            user_id = (await principal_of(services_of(request.app.state), token)).user_id
        try:
            found = await policy.get_time_request(
                container, request_id, user_id=user_id, asker=asker
            )
        except policy.RequestNotFound:
            raise not_found("Time request") from None
        return _request_out(found)

    @post(
        "/{request_id:int}/approve",
        status_code=200,
        summary="Approve (with minutes)",
        # 409: decided
        opt=facts(session_state=True, json_body=TimeRequestApproval, body_required=False),
        dependencies={
            "approval": checked_body(TimeRequestApproval, _check_approval, required=False)
        },
        middleware=[Idempotent(REDIS_ANSWERS)],
    )
    async def approve(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        principal: PrincipalDep,
        request_id: FromPath[int],
        approval: NamedDependency[TimeRequestApproval],
    ) -> TimeRequestOut:
        return await _decide(request, container, principal, request_id, approval.minutes)

    @post(
        "/{request_id:int}/deny",
        status_code=200,
        summary="Deny",
        opt=facts(session_state=True),
        middleware=[Idempotent(REDIS_ANSWERS)],
    )
    async def deny(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        principal: PrincipalDep,
        request_id: FromPath[int],
    ) -> TimeRequestOut:
        return await _decide(request, container, principal, request_id, None, approve=False)


async def _decide(
    request: Request[Any, Any, Any],
    container: ContainerDep,
    principal: Principal,
    request_id: int,
    minutes: int | None,
    approve: bool = True,
) -> TimeRequestOut:
    receipt = receipt_of(request.scope, _answer_request(200))
    try:
        decided = await policy.decide_time_request(
            container,
            principal.user_id,
            request_id,
            approve=approve,
            minutes=minutes,
            actor=principal.sub,
            receipt=receipt,
        )
    except policy.RequestNotFound:
        raise not_found("Time request") from None
    except policy.RequestDecided:
        raise ApiError(409, "This request has already been decided") from None
    return _request_out(decided)


async def day(call: Call[Any]) -> dict[str, Any]:
    """``GET /api/profiles/:id/days/:date``: a fast route (``api/fast.py``), since a kept answer
    (``services.profile_reads``) costs little next to Litestar's route machinery."""
    container, user_id = call.services.container, call.caller.user_id
    try:
        found = await ledger.owned_day_ledger(
            container, user_id, call.params["profile_id"], call.params["day"]
        )
    except ValueError:
        raise invalid([Problem("date", MSG_DATE)], "params") from None
    if found is None:
        raise not_found("Profile")
    return found


ROUTES = [
    fast_route(
        "/api/profiles/{profile_id:int}/days/{day:str}",
        Endpoint(
            "GET",
            day,
            "The day's ledger: why the budget stands",
            RouteFacts(document=ledger_day),
            auth=PRINCIPAL,
            answer=dict[str, Any],
            path={"profile_id": int, "day": str},
            operation_id="ApiProfilesProfileIdDaysDay",  # as it was when it was a ``@get`` route
        ),
        tags=["policy"],
    )
]
