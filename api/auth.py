"""Bearer-token authentication: verify the JWT, know the caller, create its user on first sight.

HS256 with ``MEDIO_JWT_SECRET`` by default. Verified tokens are cached until they expire, and
known users are cached by ``sub``, so an authenticated ingest request costs no crypto and no
database round trip after the first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, Literal

import jwt
import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from api.errors import ApiError
from medio.settings import Settings
from medio.tables import users

Role = Literal["parent", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("parent", "analyst", "admin")
CACHE_SIZE = 50_000


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the user row id, the token's ``sub`` and role."""

    user_id: int
    sub: str
    role: Role = "parent"


class Claims(msgspec.Struct, frozen=True):
    sub: str
    role: Role
    expires_at: float  # epoch seconds; inf when the token has no exp


def unauthorized(message: str = "Authentication required") -> ApiError:
    return ApiError(401, message, {"WWW-Authenticate": "Bearer"})


class TokenVerifier:
    """Checks signatures, expiry, issuer and audience; remembers tokens it has verified."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._secret = settings.signing_secret()
        self._cache: OrderedDict[str, Claims] = OrderedDict()

    def verify(self, token: str) -> Claims:
        cached = self._cache.get(token)
        now = time.time()
        if cached is not None:
            if cached.expires_at > now:
                return cached
            del self._cache[token]
        claims = self._decode(token)
        self._cache[token] = claims
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return claims

    def _decode(self, token: str) -> Claims:
        options: jwt.types.Options = {
            "require": ["sub"],
            "verify_aud": bool(self.settings.jwt_audience),
        }
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=self.settings.jwt_issuer,
                audience=self.settings.jwt_audience,
                options=options,
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("Token expired") from None
        except jwt.PyJWTError:
            raise unauthorized("Invalid token") from None
        return _claims(payload)


def _claims(payload: dict[str, Any]) -> Claims:
    sub = payload.get("sub")
    role = payload.get("role", "parent")
    if not isinstance(sub, str) or not 1 <= len(sub) <= 255:
        raise unauthorized("Invalid token")
    if role not in ROLES:
        raise unauthorized("Invalid token role")
    exp = payload.get("exp")
    return Claims(sub=sub, role=role, expires_at=float(exp) if exp is not None else float("inf"))


def create_token(
    settings: Settings, sub: str, role: Role = "parent", ttl_seconds: int = 86400
) -> str:
    """Sign a local HS256 token (``medio token create`` and tests)."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "role": role, "iat": now, "exp": now + ttl_seconds}
    if settings.jwt_issuer:
        payload["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        payload["aud"] = settings.jwt_audience
    return jwt.encode(payload, settings.signing_secret(), algorithm="HS256")


class UserDirectory:
    """Maps a token's ``sub`` to its user row, creating the row the first time."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._ids: dict[str, int] = {}

    async def user_id(self, sub: str) -> int:
        known = self._ids.get(sub)
        if known is not None:
            return known
        async with self.engine.begin() as conn:
            found = await conn.scalar(sa.select(users.c.id).where(users.c.external_id == sub))
            if found is None:
                found = await self._insert(conn, sub)
        self._ids[sub] = int(found)
        return int(found)

    async def _insert(self, conn: Any, sub: str) -> int:
        insert = users.insert().values(external_id=sub, created_at=datetime.now(UTC))
        try:
            async with conn.begin_nested():
                return int((await conn.execute(insert.returning(users.c.id))).scalar_one())
        except sa.exc.IntegrityError:  # a concurrent first request created it
            return int(await conn.scalar(sa.select(users.c.id).where(users.c.external_id == sub)))


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
