"""The wire format of instants (CONTRACT §1): UTC, milliseconds, ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain.timestamps import iso_ms

TOKYO = timezone(timedelta(hours=9))


@pytest.mark.parametrize(
    ("moment", "wire"),
    [
        (datetime(2025, 7, 30, 9, 23, 45, 678_000, tzinfo=UTC), "2025-07-30T09:23:45.678Z"),
        (datetime(2026, 1, 1, tzinfo=UTC), "2026-01-01T00:00:00.000Z"),
        (datetime(2026, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC), "2026-01-01T00:00:00.999Z"),
        (datetime(2026, 5, 6, 9, 0, 0, 1_500, tzinfo=TOKYO), "2026-05-06T00:00:00.001Z"),
        (datetime(2026, 3, 1, 8, 59, 59, tzinfo=TOKYO), "2026-02-28T23:59:59.000Z"),
    ],
)
def test_instants_are_utc_with_milliseconds_truncated_and_z(moment: datetime, wire: str) -> None:
    assert iso_ms(moment) == wire
