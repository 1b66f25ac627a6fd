"""Signed CSRF tokens (``random.signature``): a cookie Medio never issued is refused too."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from medio.settings import Settings


class CsrfTokens:
    """Issue and check signed tokens."""

    def __init__(self, settings: Settings) -> None:
        self._key = hashlib.sha256(b"medio-csrf:" + settings.signing_secret().encode()).digest()

    def _sign(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        value = secrets.token_urlsafe(24)
        return f"{value}.{self._sign(value)}"

    def valid(self, header: str | None, cookie: str | None) -> bool:
        if not header or not cookie or not hmac.compare_digest(header, cookie):
            return False
        value, _, signature = header.partition(".")
        return hmac.compare_digest(signature, self._sign(value))
