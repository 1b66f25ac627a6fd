"""Token verification: HS256, JWKS (RS256/ES256) from a key server run by the test, and attacks.

Every attack must end in a 401 ``ApiError``; nothing here talks to Redis or Postgres.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwks_server import KeyServer, ec_jwk, rsa_jwk

from adapters.settings import Settings
from api.auth import NO_EXP_CACHE_SECONDS, TokenVerifier, create_token
from api.errors import ApiError

SECRET = "unit-secret-" + "s" * 40
ISSUER = "https://idp.example.test"
AUDIENCE = "medio-api"


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "user_1", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **extra}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """A token built by hand, as an attacker would (pyjwt refuses to make these)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def key_server(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> Iterator[KeyServer]:
    server = KeyServer()
    server.keys = [rsa_jwk(rsa_key, "rsa-1"), ec_jwk(ec_key, "ec-1")]
    yield server
    server.close()


def jwks_settings(server: KeyServer, secret: str | None = None) -> Settings:
    return Settings(
        env="test",
        jwt_secret=secret,
        jwt_jwks_url=server.url,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )


async def assert_401(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(ApiError) as caught:
        await verifier.verify(token)
    assert caught.value.status == 401


# HS256 --------------------------------------------------------------------------------------


async def test_hs256_token_is_accepted_with_role() -> None:
    settings = Settings(env="test", jwt_secret=SECRET)
    verified = await TokenVerifier(settings).verify(create_token(settings, "parent-1", "analyst"))
    assert (verified.sub, verified.role) == ("parent-1", "analyst")


async def test_role_defaults_to_parent() -> None:
    settings = Settings(env="test", jwt_secret=SECRET)
    token = jwt.encode({"sub": "u"}, SECRET, algorithm="HS256")
    assert (await TokenVerifier(settings).verify(token)).role == "parent"


async def test_expired_hs256_token_is_401() -> None:
    settings = Settings(env="test", jwt_secret=SECRET)
    token = jwt.encode({"sub": "u", "exp": int(time.time()) - 60}, SECRET, algorithm="HS256")
    await assert_401(TokenVerifier(settings), token)


async def test_token_signed_with_another_secret_is_401() -> None:
    settings = Settings(env="test", jwt_secret=SECRET)
    token = jwt.encode({"sub": "u"}, "another-secret-" + "x" * 40, algorithm="HS256")
    await assert_401(TokenVerifier(settings), token)


async def test_unknown_role_is_401() -> None:
    settings = Settings(env="test", jwt_secret=SECRET)
    token = jwt.encode({"sub": "u", "role": "root"}, SECRET, algorithm="HS256")
    await assert_401(TokenVerifier(settings), token)


async def test_token_without_sub_is_401() -> None:
    settings = Settings(env="test", jwt_secret=SECRET)
    await assert_401(
        TokenVerifier(settings), jwt.encode({"role": "parent"}, SECRET, algorithm="HS256")
    )


async def test_alg_none_is_401() -> None:
    settings = Settings(env="test", jwt_secret=SECRET)
    await assert_401(
        TokenVerifier(settings), hand_made({"alg": "none", "typ": "JWT"}, claims(), None)
    )


async def test_garbage_is_401() -> None:
    await assert_401(TokenVerifier(Settings(env="test", jwt_secret=SECRET)), "not.a.token")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_hs512_with_the_right_secret_is_401() -> None:
    settings = Settings(env="test", jwt_secret=SECRET)
    await assert_401(TokenVerifier(settings), jwt.encode({"sub": "u"}, SECRET, algorithm="HS512"))


async def test_rs256_token_without_jwks_configured_is_401(rsa_key: rsa.RSAPrivateKey) -> None:
    settings = Settings(env="test", jwt_secret=SECRET)
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    await assert_401(TokenVerifier(settings), token)


async def test_verified_token_is_cached_until_expiry() -> None:
    settings = Settings(env="test", jwt_secret=SECRET)
    verifier = TokenVerifier(settings)
    token = jwt.encode({"sub": "u", "exp": int(time.time()) + 2}, SECRET, algorithm="HS256")
    assert (await verifier.verify(token)).sub == "u"
    assert verifier.cached(token) is not None
    verifier._cache[token] = (verifier._cache[token][0], 0.0)
    assert verifier.cached(token) is None


# JWKS ---------------------------------------------------------------------------------------


async def test_rs256_token_from_jwks_is_accepted(
    key_server: KeyServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(role="admin"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    verified = await TokenVerifier(jwks_settings(key_server)).verify(token)
    assert (verified.sub, verified.role) == ("user_1", "admin")


async def test_es256_token_from_jwks_is_accepted(
    key_server: KeyServer, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    token = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert (await TokenVerifier(jwks_settings(key_server)).verify(token)).sub == "user_1"


async def test_verify_fetches_keys_off_the_event_loop(
    key_server: KeyServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    verified = await TokenVerifier(jwks_settings(key_server)).verify(token)
    assert verified.sub == "user_1"


async def test_jwks_is_cached_between_tokens(
    key_server: KeyServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier(jwks_settings(key_server))
    for n in range(3):
        token = jwt.encode(
            claims(sub=f"u{n}"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}
        )
        await verifier.verify(token)
    assert key_server.fetches == 1


async def test_unknown_kid_refreshes_the_jwks(key_server: KeyServer) -> None:
    verifier = TokenVerifier(jwks_settings(key_server), jwks_refresh_cooldown=0)
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_server.keys = [rsa_jwk(rotated, "rsa-1")]  # first fetch sees only the old kid
    await verifier.verify(
        jwt.encode(claims(), rotated, algorithm="RS256", headers={"kid": "rsa-1"})
    )
    key_server.keys.append(rsa_jwk(rotated, "rsa-2"))
    token = jwt.encode(claims(sub="new"), rotated, algorithm="RS256", headers={"kid": "rsa-2"})
    assert (await verifier.verify(token)).sub == "new"
    assert key_server.fetches == 2


async def test_token_signed_by_another_rsa_key_is_401(key_server: KeyServer) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "rsa-1"})
    await assert_401(TokenVerifier(jwks_settings(key_server)), token)


async def test_expired_jwks_token_is_401(key_server: KeyServer, rsa_key: rsa.RSAPrivateKey) -> None:
    expired = claims(exp=int(time.time()) - 60)
    token = jwt.encode(expired, rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    await assert_401(TokenVerifier(jwks_settings(key_server)), token)


async def test_wrong_issuer_is_401(key_server: KeyServer, rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(
        claims(iss="https://evil.test"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}
    )
    await assert_401(TokenVerifier(jwks_settings(key_server)), token)


async def test_wrong_audience_is_401(key_server: KeyServer, rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(
        claims(aud="another-api"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}
    )
    await assert_401(TokenVerifier(jwks_settings(key_server)), token)


async def test_missing_audience_is_401_when_one_is_configured(
    key_server: KeyServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    payload = claims()
    del payload["aud"]
    token = jwt.encode(payload, rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    await assert_401(TokenVerifier(jwks_settings(key_server)), token)


async def test_unknown_kid_is_401(key_server: KeyServer, rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "nope"})
    await assert_401(TokenVerifier(jwks_settings(key_server), jwks_refresh_cooldown=0), token)


async def test_rs256_header_on_an_ec_key_is_401(
    key_server: KeyServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "ec-1"})
    await assert_401(TokenVerifier(jwks_settings(key_server)), token)


@pytest.mark.parametrize("secret", [None, SECRET])
async def test_hs256_signed_with_the_rsa_public_key_is_401(
    key_server: KeyServer, rsa_key: rsa.RSAPrivateKey, secret: str | None
) -> None:
    """The classic confusion attack: HMAC keyed with the public key the server publishes."""
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = hand_made({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(), public_pem)
    await assert_401(TokenVerifier(jwks_settings(key_server, secret)), token)


async def test_alg_none_is_401_with_jwks(key_server: KeyServer) -> None:
    token = hand_made({"alg": "none", "kid": "rsa-1"}, claims(), None)
    await assert_401(TokenVerifier(jwks_settings(key_server, SECRET)), token)


async def test_hs256_is_refused_with_jwks_and_no_explicit_secret(key_server: KeyServer) -> None:
    dev_secret = Settings(env="test", jwt_secret=SECRET)
    token = create_token(dev_secret, "u")
    await assert_401(TokenVerifier(jwks_settings(key_server)), token)


async def test_hs256_still_works_with_jwks_when_the_secret_is_set(key_server: KeyServer) -> None:
    settings = jwks_settings(key_server, SECRET)
    verified = await TokenVerifier(settings).verify(create_token(settings, "operator"))
    assert verified.sub == "operator"


async def test_unreachable_jwks_is_503_not_a_crash(rsa_key: rsa.RSAPrivateKey) -> None:
    server = KeyServer()
    settings = jwks_settings(server)
    server.close()
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    with pytest.raises(ApiError) as caught:
        await TokenVerifier(settings).verify(token)
    assert caught.value.status == 503


def test_verify_offline_never_fetches_keys(
    key_server: KeyServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    """The rate limiter's check: a token whose key is not held yet is 'unknown', not a fetch."""
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert TokenVerifier(jwks_settings(key_server)).verify_offline(token) is None
    assert key_server.fetches == 0


async def test_verify_offline_uses_keys_already_held(
    key_server: KeyServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier(jwks_settings(key_server))
    await verifier.verify(
        jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    )
    other = jwt.encode(claims(sub="u2"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    verified = verifier.verify_offline(other)
    assert verified is not None and verified.sub == "u2"
    assert key_server.fetches == 1


# exp (issue 15, L13) ---------------------------------------------------------------------


@pytest.mark.parametrize("exp", ["9999999999", "tomorrow", True, None, [1]])
async def test_exp_that_is_not_a_number_is_401(exp: object) -> None:
    """RFC 7519 NumericDate: a JSON number. A numeric string is not one (pyjwt reads it)."""
    settings = Settings(env="test", jwt_secret=SECRET)
    token = hand_made({"alg": "HS256", "typ": "JWT"}, {"sub": "u", "exp": exp}, SECRET.encode())
    await assert_401(TokenVerifier(settings), token)


async def test_token_without_exp_is_accepted_but_kept_only_briefly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(env="test", jwt_secret=SECRET)
    verifier = TokenVerifier(settings)
    token = jwt.encode({"sub": "no-exp"}, SECRET, algorithm="HS256")
    assert (await verifier.verify(token)).sub == "no-exp"
    assert verifier.cached(token) is not None
    later = time.time() + NO_EXP_CACHE_SECONDS + 1
    monkeypatch.setattr("api.auth.time.time", lambda: later)
    assert verifier.cached(token) is None  # verified again (and checked again) from now on


async def test_no_token_is_kept_past_its_exp(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(env="test", jwt_secret=SECRET)
    verifier = TokenVerifier(settings)
    exp = int(time.time()) + 30
    token = jwt.encode({"sub": "u", "exp": exp}, SECRET, algorithm="HS256")
    await verifier.verify(token)
    monkeypatch.setattr("api.auth.time.time", lambda: exp - 0.5)
    assert verifier.cached(token) is not None
    monkeypatch.setattr("api.auth.time.time", lambda: exp + 0.001)
    assert verifier.cached(token) is None
