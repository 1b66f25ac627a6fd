"""Bearer-token authentication: verify the JWT, know the caller, create its user on first sight.

HS256 with ``MEDIO_JWT_SECRET`` by default; RS256/ES256 from a JWKS URL (``MEDIO_JWT_JWKS_URL``)
for a hosted identity provider. Verified tokens are cached until they expire, and known users
are cached by ``sub``, so an authenticated ingest request costs no crypto and no database round
trip after the first.

Algorithm confusion is impossible by construction: the token's ``alg`` header only chooses
*which configured source* to ask, and each source has one key type and its own algorithms
(the shared secret only ever verifies HS256; a JWKS key only the algorithm of its own type).
An RSA public key therefore never reaches HMAC, and ``alg: none`` has no source at all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, Literal

import jwt
import msgspec
from jwt import PyJWK
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.settings import Settings
from adapters.tables import users
from api.errors import ApiError
from api.jwks import JwksKeys, KeysUnavailable

log = logging.getLogger("medio.auth")

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


HS_ALGORITHMS = ("HS256",)
JWKS_ALGORITHMS = ("RS256", "ES256")
JWKS_CACHE_SECONDS = 300
JWKS_REFRESH_COOLDOWN_SECONDS = 10
JWKS_TIMEOUT_SECONDS = 5
# A token without ``exp`` is valid (CONTRACT §3: enforced when present), but its verdict is
# kept only this long, so a revoked signing key or secret stops it soon.
NO_EXP_CACHE_SECONDS = 60.0


class TokenVerifier:
    """Checks signatures, expiry, issuer and audience; remembers tokens it has verified.

    With a JWKS URL configured, HS256 tokens are still accepted when ``MEDIO_JWT_SECRET`` is set
    explicitly (``medio token create`` keeps working for operators); otherwise only JWKS keys.
    Keys are fetched only by ``verify`` (off the event loop, see ``api.jwks``);
    ``verify_offline`` never touches the network, for callers that must not wait on it.
    """

    def __init__(
        self, settings: Settings, jwks_refresh_cooldown: float = JWKS_REFRESH_COOLDOWN_SECONDS
    ) -> None:
        self.settings = settings
        self._secret = (
            settings.jwt_secret if settings.jwt_jwks_url else settings.signing_secret()
        ) or None
        self._jwks = (
            JwksKeys(
                settings.jwt_jwks_url,
                lifespan=JWKS_CACHE_SECONDS,
                cooldown=jwks_refresh_cooldown,
                timeout=JWKS_TIMEOUT_SECONDS,
            )
            if settings.jwt_jwks_url
            else None
        )
        self._cache: OrderedDict[str, tuple[Claims, float]] = OrderedDict()

    def cached(self, token: str) -> Claims | None:
        """The claims of a token verified before, while its verdict may be kept."""
        entry = self._cache.get(token)
        if entry is None:
            return None
        if entry[1] > time.time():
            return entry[0]
        del self._cache[token]
        return None

    def verify_offline(self, token: str) -> Claims | None:
        """Verify ``token`` if that needs no key fetch; ``None`` if it would (raises 401 if bad)."""
        cached = self.cached(token)
        if cached is not None:
            return cached
        algorithm = _header_alg(token)
        if algorithm in JWKS_ALGORITHMS and self._jwks is not None:
            jwk = self._jwks.held(_header_kid(token))
            if jwk is None:
                return None
            return self._remember(token, self._decode(token, self._jwk_key(jwk, algorithm)))
        return self._remember(token, self._decode(token, self._secret_for(algorithm)))

    async def verify(self, token: str) -> Claims:
        """Verify ``token``, fetching the key set (off the event loop) when it must."""
        cached = self.cached(token)
        if cached is not None:
            return cached
        algorithm = _header_alg(token)
        if algorithm in JWKS_ALGORITHMS and self._jwks is not None:
            try:
                jwk = await self._jwks.key(_header_kid(token))
            except KeysUnavailable:
                raise ApiError(503, "Identity provider keys unavailable") from None
            if jwk is None:
                raise unauthorized("Invalid token")
            key = self._jwk_key(jwk, algorithm)
        else:
            key = self._secret_for(algorithm)
        return self._remember(token, self._decode(token, key))

    def _remember(self, token: str, claims: Claims) -> Claims:
        if claims.expires_at == math.inf:
            self._cache[token] = (claims, time.time() + NO_EXP_CACHE_SECONDS)
        else:
            self._cache[token] = (claims, claims.expires_at)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return claims

    def _secret_for(self, algorithm: str) -> tuple[Any, str]:
        if algorithm in HS_ALGORITHMS and self._secret:
            return self._secret, algorithm
        raise unauthorized("Invalid token")

    @staticmethod
    def _jwk_key(jwk: PyJWK, algorithm: str) -> tuple[Any, str]:
        """A JWKS key verifies only the algorithm of its own type (no confusion)."""
        if jwk.algorithm_name != algorithm:  # e.g. an EC key asked to verify RS256
            raise unauthorized("Invalid token")
        return jwk.key, algorithm

    def _decode(self, token: str, key_and_algorithm: tuple[Any, str]) -> Claims:
        key, algorithm = key_and_algorithm
        options: jwt.types.Options = {
            "require": ["sub"],
            "verify_aud": bool(self.settings.jwt_audience),
            "verify_iss": bool(self.settings.jwt_issuer),
        }
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
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


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise unauthorized("Invalid token") from None


def _header_alg(token: str) -> str:
    algorithm = _header(token).get("alg")
    if not isinstance(algorithm, str):
        raise unauthorized("Invalid token")
    return algorithm


def _header_kid(token: str) -> str | None:
    kid = _header(token).get("kid")
    if kid is not None and not isinstance(kid, str):
        raise unauthorized("Invalid token")
    return kid


def _claims(payload: dict[str, Any]) -> Claims:
    sub = payload.get("sub")
    role = payload.get("role", "parent")
    if not isinstance(sub, str) or not valid_sub(sub):
        raise unauthorized("Invalid token")
    if role not in ROLES:
        raise unauthorized("Invalid token role")
    return Claims(sub=sub, role=role, expires_at=_expiry(payload.get("exp", math.inf)))


def valid_sub(sub: str) -> bool:
    """1-255 characters, none of them a control character or a lone surrogate.

    Such a ``sub`` cannot be stored (Postgres refuses NUL and unencodable text) and is no
    identity provider's user id: refused as an invalid token rather than failing later.
    """
    return 1 <= len(sub) <= 255 and sub.isprintable()  # Cc and Cs (surrogates) are not


def _expiry(exp: object) -> float:
    """``exp`` as epoch seconds: a JSON number (RFC 7519 NumericDate), not a numeric string."""
    if exp == math.inf:
        return math.inf
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        raise unauthorized("Invalid token")
    return float(exp)


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
    """Maps a token's ``sub`` to its user row, creating the row the first time.

    Ids are remembered per process (the ``KNOWN_USERS`` most recently used: a process that
    has seen millions of users keeps a bounded map); concurrent first requests of one ``sub``
    share one upsert. ``note`` makes sure the row exists without waiting, for routes that need
    only the ``sub`` (ingest): new subjects are collected and registered together, one
    multi-row upsert per round, so a burst of new users costs the database a few statements, not one
    transaction each.
    """

    RETRY_SECONDS = 1.0
    BATCH = 1000
    KNOWN_USERS = 100_000  # ids kept per process, the most recently used (about 15 MB)

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._ids: OrderedDict[str, int] = OrderedDict()  # an LRU: see _known, _learn
        self._pending: dict[str, asyncio.Task[dict[str, int]]] = {}
        self._noted: set[str] = set()
        self._registrar: asyncio.Task[None] | None = None
        self._retry_at = 0.0

    def _known(self, sub: str) -> int | None:
        known = self._ids.get(sub)
        if known is not None:
            self._ids.move_to_end(sub)
        return known

    def _learn(self, ids: dict[str, int]) -> None:
        self._ids.update(ids)
        while len(self._ids) > self.KNOWN_USERS:
            self._ids.popitem(last=False)

    async def user_id(self, sub: str) -> int:
        known = self._known(sub)
        if known is not None:
            return known
        task = self._pending.get(sub)
        if task is None:
            task = asyncio.ensure_future(self._upsert([sub]))
            self._pending[sub] = task
            task.add_done_callback(lambda _: self._pending.pop(sub, None))
        return (await asyncio.shield(task))[sub]

    def forget(self, sub: str) -> None:
        """``sub``'s row was erased: its next request makes a new one."""
        self._ids.pop(sub, None)

    def note(self, sub: str) -> None:
        """Register ``sub`` in the background if this process has not seen it."""
        if self._known(sub) is not None:
            return
        self._noted.add(sub)
        idle = self._registrar is None or self._registrar.done()
        if idle and time.monotonic() >= self._retry_at:
            self._registrar = asyncio.ensure_future(self._register_noted())

    async def _register_noted(self) -> None:
        while self._noted:
            batch = [self._noted.pop() for _ in range(min(self.BATCH, len(self._noted)))]
            try:
                await self._upsert(batch)
            except Exception as exc:
                if _is_outage(exc):
                    self._later(batch, exc)  # the database is down: keep them for later
                    return
                if not await self._register_one_by_one(batch):
                    return

    async def _register_one_by_one(self, batch: list[str]) -> bool:
        """After a batch failed for its data: each subject alone, so one row the database
        refuses cannot keep every other user of its batch from being created. A subject
        refused alone is dropped (its next request notes it again). ``False``: the database
        went away meanwhile (the rest is kept for a later round)."""
        for index, sub in enumerate(batch):
            try:
                await self._upsert([sub])
            except Exception as exc:
                if _is_outage(exc):
                    self._later(batch[index:], exc)
                    return False
                log.warning("user row not created for a subject the database refuses: %s", exc)
        return True

    def _later(self, subs: list[str], exc: Exception) -> None:
        self._noted.update(subs)
        self._retry_at = time.monotonic() + self.RETRY_SECONDS
        log.warning("user rows for %d new subjects not created yet: %s", len(subs), exc)

    async def _upsert(self, subs: list[str]) -> dict[str, int]:
        insert = (sqlite_insert if self.engine.dialect.name == "sqlite" else pg_insert)(users)
        now = datetime.now(UTC)
        statement = (
            insert.values([{"external_id": sub, "created_at": now} for sub in subs])
            .on_conflict_do_update(
                index_elements=[users.c.external_id],
                set_={"external_id": insert.excluded.external_id},
            )
            .returning(users.c.external_id, users.c.id)
        )
        async with self.engine.begin() as conn:
            ids = {sub: int(user_id) for sub, user_id in await conn.execute(statement)}
        self._learn(ids)
        return ids


def _is_outage(exc: Exception) -> bool:
    """The database is unreachable (as opposed to refusing this data)."""
    return isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError) or bool(
        getattr(exc, "connection_invalidated", False)
    )


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
