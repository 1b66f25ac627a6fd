from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.codec import UnknownEvent, decode, encode
from domain.events import DayShare, ProgressSaved, SessionHeartbeat

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_event_round_trips_through_codec() -> None:
    event = SessionHeartbeat(
        occurred_at=NOW,
        actor="u1",
        session_id=7,
        profile_id=3,
        video_id=9,
        shares=(DayShare("2026-01-02", 45.0),),
        position=120.5,
    )
    assert decode(*encode(event)) == event


def test_progress_saved_v1_is_upcast_to_current() -> None:
    v1 = (
        b'{"type":"progress.saved","occurred_at":"2026-01-02T03:04:05.678Z",'
        b'"actor":"u1","clerk_id":"u1","tmdb_id":"42","current_time":12}'
    )
    event = decode("progress.saved", 1, v1)
    assert isinstance(event, ProgressSaved)
    assert (event.current_time, event.duration, event.finished) == (12.0, None, False)


def test_current_version_is_two_for_progress_saved() -> None:
    event = ProgressSaved(occurred_at=NOW, actor="u", clerk_id="u", tmdb_id="1", current_time=1)
    assert encode(event)[1] == 2


@pytest.mark.parametrize(
    ("name", "version", "data"),
    [
        ("nope.happened", 1, b"{}"),
        ("progress.saved", 9, b"{}"),
        ("progress.saved", 2, b"not json"),
        ("progress.deleted", 1, b'{"type":"progress.deleted"}'),
    ],
)
def test_unreadable_events_raise_unknown_event(name: str, version: int, data: bytes) -> None:
    with pytest.raises(UnknownEvent):
        decode(name, version, data)
