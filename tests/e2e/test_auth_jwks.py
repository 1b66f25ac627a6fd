"""Bearer tokens over HTTP with a JWKS served by the test: good tokens in, every attack 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwks_server import KeyServer, ec_jwk, rsa_jwk
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters.settings import Settings
from api.app import create_app

Client = AsyncTestClient[Litestar]
ISSUER = "https://clerk.example.test"
AUDIENCE = "medio"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    server.keys = [rsa_jwk(RSA_KEY, "rsa-1"), ec_jwk(EC_KEY, "ec-1")]
    yield server
    server.close()


@pytest.fixture
async def jwks_client(settings: Settings, key_server: KeyServer) -> AsyncIterator[Client]:
    own = msgspec.structs.replace(
        settings, jwt_jwks_url=key_server.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE
    )
    async with AsyncTestClient(app=create_app(own)) as client:
        yield client


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "user_clerk_1", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, **extra}


def rs256(payload: dict[str, Any], key: Any = RSA_KEY, kid: str = "rsa-1") -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def unsigned(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if hmac_key is None:
        return signing_input + "."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def get_profiles(client: Client, token: str) -> Any:
    return await client.get("/api/profiles", headers={"Authorization": f"Bearer {token}"})


async def test_rs256_token_from_the_jwks_is_accepted(jwks_client: Client) -> None:
    response = await get_profiles(jwks_client, rs256(claims(sub="clerk_rs")))
    assert response.status_code == 200


async def test_es256_token_from_the_jwks_is_accepted(jwks_client: Client) -> None:
    token = jwt.encode(claims(sub="clerk_es"), EC_KEY, algorithm="ES256", headers={"kid": "ec-1"})
    assert (await get_profiles(jwks_client, token)).status_code == 200


async def test_first_sight_of_a_sub_creates_one_user(jwks_client: Client) -> None:
    token = rs256(claims(sub="clerk_new_parent"))
    headers = {"Authorization": f"Bearer {token}"}
    created = await jwks_client.post(
        "/api/profiles", json={"name": "Ann", "age": 5}, headers=headers
    )
    again = await jwks_client.post("/api/profiles", json={"name": "Ben", "age": 6}, headers=headers)
    assert created.json()["user_id"] == again.json()["user_id"]


def attacks() -> list[tuple[str, str]]:
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return [
        ("expired", rs256(claims(exp=int(time.time()) - 120))),
        ("wrong key", rs256(claims(), key=stranger)),
        ("alg none", unsigned({"alg": "none", "typ": "JWT"}, claims(), None)),
        ("hs/rs confusion", unsigned({"alg": "HS256", "kid": "rsa-1"}, claims(), public_pem)),
        ("wrong issuer", rs256(claims(iss="https://evil.example.test"))),
        ("wrong audience", rs256(claims(aud="someone-else"))),
        ("unknown kid", rs256(claims(), kid="rotated-away")),
        ("garbage", "abc.def.ghi"),
    ]


@pytest.mark.parametrize(("attack", "token"), attacks(), ids=[a for a, _ in attacks()])
async def test_token_attacks_are_401(jwks_client: Client, attack: str, token: str) -> None:
    response = await get_profiles(jwks_client, token)
    assert response.status_code == 401, attack
    assert response.json()["error"]["status"] == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_missing_token_is_401(jwks_client: Client) -> None:
    response = await jwks_client.get("/api/videos")
    assert response.status_code == 401
