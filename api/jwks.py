"""The identity provider's signing keys (``MEDIO_JWT_JWKS_URL``), fetched off the event loop.

pyjwt's ``PyJWKClient`` fetches with blocking ``urllib`` inside ``get_signing_key_from_jwt``,
and its cooldown starts only after a *successful* fetch: every token with an unknown ``kid``
while the provider was slow or down cost a fresh fetch of up to its timeout, and when called on
the event loop (as the rate limiter did) it stopped the whole process (issue 15, H1: six such
requests froze a process for a minute). Here the client is used only to download and parse the
set, in a worker thread, and this class decides when that happens:

- one fetch at a time: concurrent requests that need the set wait for the same fetch;
- after any attempt, successful or not, no new one for ``cooldown`` seconds: an unknown
  ``kid`` within the cooldown is answered from what is held (401), a provider that failed is
  answered 503 at once, without waiting on it again;
- a set older than ``lifespan`` is refreshed in the background while its keys keep verifying,
  and a failed refresh keeps the keys already held (a provider outage does not log users out).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import anyio.to_thread
import jwt
from jwt import PyJWK

log = logging.getLogger("medio.auth")


class KeysUnavailable(Exception):
    """The key set could not be fetched and does not hold the key asked for."""


class JwksKeys:
    """Signing keys by ``kid``, refreshed at most once per ``cooldown`` (see module docstring)."""

    def __init__(self, url: str, *, lifespan: float, cooldown: float, timeout: float) -> None:
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        self.lifespan = lifespan
        self.cooldown = cooldown
        self.timeout = timeout
        self._keys: dict[str | None, PyJWK] = {}
        self._fetched_at = -math.inf  # monotonic time of the last successful fetch
        self._attempted_at = -math.inf  # of the last attempt, successful or not
        self._failed = False
        self._fetch: asyncio.Task[None] | None = None

    def held(self, kid: str | None) -> PyJWK | None:
        """The key named ``kid`` if the set already holds it: no network, never waits."""
        key = self._keys.get(kid)
        if key is not None and time.monotonic() - self._fetched_at > self.lifespan:
            self._start_fetch()  # stale: refresh behind the request, keep verifying meanwhile
        return key

    async def key(self, kid: str | None) -> PyJWK | None:
        """The key named ``kid``, fetching the set if allowed; ``None`` if the set lacks it.

        Raises ``KeysUnavailable`` when the last fetch failed and the key is not held.
        """
        key = self.held(kid)
        if key is not None:
            return key
        if self._fetch is None and time.monotonic() - self._attempted_at >= self.cooldown:
            self._start_fetch()
        if self._fetch is not None:
            await asyncio.shield(self._fetch)
        key = self._keys.get(kid)
        if key is None and self._failed:
            raise KeysUnavailable
        return key

    def _start_fetch(self) -> None:
        if self._fetch is None and time.monotonic() - self._attempted_at >= self.cooldown:
            self._attempted_at = time.monotonic()
            self._fetch = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        try:
            # The thread is bounded by the client's own socket timeout; this bounds the wait.
            jwk_set = await asyncio.wait_for(
                anyio.to_thread.run_sync(self._download, abandon_on_cancel=True),
                self.timeout + 1,
            )
        except Exception as exc:  # whatever failed, there are no new keys: logged
            self._failed = True
            log.warning("JWKS fetch failed (next attempt in %ss): %s", self.cooldown, exc)
        else:
            self._keys = {
                key.key_id: key for key in jwk_set.keys if key.public_key_use in ("sig", None)
            }
            self._fetched_at = time.monotonic()
            self._failed = False
        finally:
            self._attempted_at = time.monotonic()
            self._fetch = None

    def _download(self) -> jwt.PyJWKSet:
        return self._client.get_jwk_set(refresh=True)
