"""Pairing rules (domain.devices): codes, their life, the poll's answers, one token per code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain import devices

NOW = datetime(2026, 5, 6, 3, 0, tzinfo=UTC)


def _pairing() -> devices.Pairing:
    pairing, _event = devices.start("p1", "hash", NOW, "device-pairing")
    return pairing


def _confirmed() -> tuple[devices.Pairing, devices.Device]:
    pairing, device, _event = devices.confirm(
        _pairing(), device_id=7, profile_id=3, user_id=2, name="TV", now=NOW, actor="u"
    )
    return pairing, device


def test_user_codes_use_the_unambiguous_alphabet_and_are_typed_forgivingly() -> None:
    codes = {devices.new_user_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 9 and code[4] == "-"
        assert set(code.replace("-", "")) <= set("BCDFGHJKLMNPQRSTVWXZ")
        assert devices.normal_user_code(code.lower().replace("-", " ")) == code.replace("-", "")
    for typed in ("BCDF-GHJ", "BCDF-GHJA", "0CDF-GHJK", 12345678, "B" * 40):
        assert devices.normal_user_code(typed) is None


def test_tokens_and_device_codes_carry_256_random_bits() -> None:
    token = devices.new_device_token()
    assert devices.is_device_token(token) and len(token) == 4 + 43
    assert len(devices.new_device_code()) == 43
    assert devices.secret_hash(token) != devices.secret_hash(devices.new_device_token())


def test_a_pairing_lives_600_seconds_and_is_confirmed_once() -> None:
    pairing = _pairing()
    assert pairing.expires_at == NOW + timedelta(seconds=600)
    assert devices.confirmable(pairing, NOW + timedelta(seconds=599))
    assert not devices.confirmable(pairing, NOW + timedelta(seconds=600))
    confirmed, _device = _confirmed()
    assert not devices.confirmable(confirmed, NOW)


def test_polls_are_pending_then_paced_then_answered_once() -> None:
    pairing = _pairing()
    assert devices.poll_error(pairing, None, NOW) == "authorization_pending"
    polled = devices.polled(pairing, NOW)
    assert devices.poll_error(polled, None, NOW + timedelta(seconds=3)) == "slow_down"
    assert devices.poll_error(polled, None, NOW + timedelta(seconds=4)) == "authorization_pending"
    confirmed, device = _confirmed()
    assert devices.poll_error(confirmed, device, NOW) is None
    spent, holding, event = devices.issue(confirmed, device, "h", NOW)
    assert holding.token_hash == "h" and event.token_hash == "h"
    assert devices.poll_error(spent, holding, NOW + timedelta(seconds=10)) == "invalid_grant"


def test_a_code_expires_also_when_confirmed_but_not_collected_or_revoked_first() -> None:
    later = NOW + timedelta(seconds=600)
    assert devices.poll_error(_pairing(), None, later) == "expired_token"
    confirmed, device = _confirmed()
    assert devices.poll_error(confirmed, device, later) == "expired_token"
    assert devices.poll_error(confirmed, None, NOW) == "expired_token"  # revoked meanwhile
    assert devices.poll_error(None, None, NOW) == "invalid_grant"


def test_device_names_are_trimmed_and_bounded() -> None:
    assert devices.device_name("  Living room TV ") == "Living room TV"
    for bad in ("", "   ", "x" * 51, None, 5, "a\x00b"):
        assert devices.device_name(bad) is None
