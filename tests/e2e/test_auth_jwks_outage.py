"""A slow or failing identity provider never stalls the API (issue 15, H1).

Tokens naming a ``kid`` the key set does not hold used to make the rate limiter (which runs
before authentication) fetch the JWKS on the event loop, once per request: six of them froze a
process for about a minute. These run a real uvicorn server (``tests/live_server.py``), since
``AsyncTestClient`` serialises requests and would hide a blocked loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwks_server import KeyServer, rsa_jwk
from live_server import live_server

from adapters.settings import Settings
from api.app import create_app
from api.auth import create_token

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SLOW_SECONDS = 3.0


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    server.keys = [rsa_jwk(RSA_KEY, "rsa-1")]
    yield server
    server.close()


@pytest.fixture
def jwks_settings(settings: Settings, key_server: KeyServer) -> Settings:
    return msgspec.structs.replace(settings, jwt_jwks_url=key_server.url, rate_limit_enabled=True)


@pytest.fixture
def base_url(jwks_settings: Settings) -> Iterator[str]:
    with live_server(create_app(jwks_settings)) as port:
        yield f"http://127.0.0.1:{port}"


def rs256(sub: str, kid: str) -> str:
    payload: dict[str, Any] = {"sub": sub, "exp": int(time.time()) + 600}
    return jwt.encode(payload, RSA_KEY, algorithm="RS256", headers={"kid": kid})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def timed(request: Any) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await request
    return time.perf_counter() - started, response


async def test_bad_kid_requests_do_not_stall_health_or_other_callers(
    base_url: str, key_server: KeyServer, jwks_settings: Settings
) -> None:
    key_server.delay = SLOW_SECONDS
    operator = create_token(jwks_settings, "operator_1")  # HS256: MEDIO_JWT_SECRET is set
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        bad = [
            asyncio.ensure_future(
                client.get("/api/profiles", headers=bearer(rs256(f"c{n}", f"unknown-{n}")))
            )
            for n in range(6)
        ]
        await asyncio.sleep(0.3)  # the bad requests are waiting on the key server now
        health_seconds, health = await timed(client.get("/health"))
        other_seconds, other = await timed(client.get("/api/profiles", headers=bearer(operator)))
        answers = await asyncio.gather(*bad)
    assert health.status_code == 200 and health_seconds < 0.5, health_seconds
    assert other.status_code == 200 and other_seconds < 0.5, other_seconds
    assert [answer.status_code for answer in answers] == [401] * 6
    assert key_server.fetches == 1  # one fetch shared by all, none per request


async def test_a_failed_fetch_starts_a_cooldown(base_url: str, key_server: KeyServer) -> None:
    key_server.status = 500  # the identity provider is failing
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        answers = [
            await client.get("/api/profiles", headers=bearer(rs256("c", f"unknown-{n}")))
            for n in range(6)
        ]
    assert [answer.status_code for answer in answers] == [503] * 6
    assert key_server.fetches == 1


async def test_known_keys_still_verify_while_the_provider_is_down(
    base_url: str, key_server: KeyServer
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        first = await client.get("/api/profiles", headers=bearer(rs256("c1", "rsa-1")))
        key_server.status = 500
        unknown = await client.get("/api/profiles", headers=bearer(rs256("c2", "rotated")))
        known = await client.get("/api/profiles", headers=bearer(rs256("c3", "rsa-1")))
    assert (first.status_code, unknown.status_code, known.status_code) == (200, 401, 200)
