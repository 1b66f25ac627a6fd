"""The wire format of instants: ISO-8601 UTC with milliseconds and ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(moment: datetime) -> str:
    """``2025-07-30T09:23:45.678Z`` for any aware datetime."""
    # isoformat ends in "+00:00" in UTC; it costs half of strftime (hot in ingest and replay)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
