"""Signed CSRF tokens (``random.signature``): a cookie Medio never issued is refused too.

The signing key is derived from ``MEDIO_JWT_SECRET`` (or the development secret). A production
deployment that verifies tokens only through a JWKS URL has no such secret, and should not need
one (setting it would also make Medio accept HS256 tokens): there the key is a random value made
once and kept in Redis (``services.guards.shared_csrf_key``), read by every API process at
start, so a token issued by one process is good at all. Should Redis lose it, a new one is made
and outstanding CSRF tokens are refused once (the page fetches a new one).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from adapters.settings import Settings
from services.container import Container
from services.guards import shared_csrf_key


def _derived(secret: str) -> bytes:
    return hashlib.sha256(b"medio-csrf:" + secret.encode()).digest()


class CsrfTokens:
    """Issue and check signed tokens."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.jwt_secret
        if not secret and settings.env != "production":
            secret = settings.signing_secret()
        self._key: bytes | None = _derived(secret) if secret else None

    async def load_key(self, container: Container) -> None:
        """Without a secret (production, JWKS only): the key shared through Redis."""
        if self._key is None:
            self._key = _derived(await shared_csrf_key(container))

    def _sign(self, value: str) -> str:
        if self._key is None:
            raise RuntimeError("CSRF key not loaded (CsrfTokens.load_key at start-up)")
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        value = secrets.token_urlsafe(24)
        return f"{value}.{self._sign(value)}"

    def valid(self, header: str | None, cookie: str | None) -> bool:
        if not header or not cookie or not hmac.compare_digest(header, cookie):
            return False
        value, _, signature = header.partition(".")
        return hmac.compare_digest(signature, self._sign(value))
