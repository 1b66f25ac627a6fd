from __future__ import annotations

import base64

import pytest

from adapters.settings import SettingsError, load_settings


def test_defaults_listen_on_localhost_8000(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDIO_HOST", raising=False)
    monkeypatch.delenv("MEDIO_PORT", raising=False)
    settings = load_settings(env_file=None)
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.heartbeat_max_gap_seconds == 90


def test_environment_values_are_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIO_PORT", "9001")
    monkeypatch.setenv("MEDIO_STREAM_SHARDS", "4")
    settings = load_settings(env_file=None)
    assert settings.port == 9001
    assert settings.stream_shards == 4


def test_bad_number_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIO_PORT", "eighty")
    with pytest.raises(SettingsError, match="MEDIO_PORT"):
        load_settings(env_file=None)


@pytest.mark.parametrize("secret", [None, "short"])
def test_production_refuses_missing_or_short_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str | None
) -> None:
    monkeypatch.setenv("MEDIO_ENV", "production")
    monkeypatch.delenv("MEDIO_JWT_SECRET", raising=False)
    if secret:
        monkeypatch.setenv("MEDIO_JWT_SECRET", secret)
    with pytest.raises(SettingsError, match="MEDIO_JWT_SECRET must be set"):
        load_settings(env_file=None)


MASTER_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()


def test_production_accepts_long_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIO_ENV", "production")
    monkeypatch.setenv("MEDIO_JWT_SECRET", "s" * 48)
    monkeypatch.setenv("MEDIO_MASTER_KEY", MASTER_KEY)
    assert load_settings(env_file=None).env == "production"


def test_production_refuses_to_start_without_a_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIO_ENV", "production")
    monkeypatch.setenv("MEDIO_JWT_SECRET", "s" * 48)
    monkeypatch.delenv("MEDIO_MASTER_KEY", raising=False)
    with pytest.raises(SettingsError, match="MEDIO_MASTER_KEY must be set in production"):
        load_settings(env_file=None)


@pytest.mark.parametrize("value", ["short", MASTER_KEY[:-4], "!" * 44])
def test_a_master_key_that_is_not_32_bytes_is_refused_without_being_echoed(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MEDIO_MASTER_KEY", value)
    with pytest.raises(SettingsError, match="MEDIO_MASTER_KEY must be 32 bytes") as refused:
        load_settings(env_file=None)
    assert value not in str(refused.value)


def test_retention_is_off_or_longer_than_a_resume_position_lives() -> None:
    assert load_settings(env_file=None, retention_days="31").retention_days == 31
    for days in ("-1", "30"):
        with pytest.raises(SettingsError, match="MEDIO_RETENTION_DAYS"):
            load_settings(env_file=None, retention_days=days)


def test_rate_limit_policy_must_be_requests_per_seconds() -> None:
    with pytest.raises(SettingsError, match="RATE_LIMIT_GENERAL"):
        load_settings(env_file=None, rate_limit_general="lots")


def test_unknown_default_timezone_is_refused() -> None:
    with pytest.raises(SettingsError, match="IANA"):
        load_settings(env_file=None, default_timezone="Mars/Olympus")


def test_postgres_url_uses_asyncpg_driver() -> None:
    settings = load_settings(env_file=None, database_url="postgresql://u@h:5432/db")
    assert settings.sqlalchemy_url == "postgresql+asyncpg://u@h:5432/db"


def test_titles_per_user_default_to_a_thousand_and_must_be_positive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MEDIO_MAX_TITLES_PER_USER", raising=False)
    assert load_settings(env_file=None).max_titles_per_user == 1000
    monkeypatch.setenv("MEDIO_MAX_TITLES_PER_USER", "0")
    with pytest.raises(SettingsError, match="MEDIO_MAX_TITLES_PER_USER"):
        load_settings(env_file=None)
