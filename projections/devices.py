"""The devices table: one row per paired kids device, as its events describe it.

``device.paired`` inserts the row, ``device.token_issued`` records when (and the hash of what)
the device collected, ``device.revoked`` when its parent revoked it. This is the lasting record
of a family's devices (exports, analysts, replay); the per-request check of a device token reads
the command side's Redis key instead (``services.devices``), which a revocation deletes in the
same atomic step as it appends ``device.revoked``, so no projection lag can keep a revoked token
alive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.tables import devices
from domain.events import DevicePaired, DeviceRevoked, DeviceTokenIssued
from projections.base import Envelope, SqlProjection


class DevicesProjection(SqlProjection):
    """``device.*`` events into ``devices`` (pairings that were never confirmed leave no row)."""

    name = "devices"
    handles = frozenset({"device.paired", "device.token_issued", "device.revoked"})
    live_tables = (devices,)

    async def apply(self, conn: AsyncConnection, batch: Sequence[Envelope]) -> None:
        table = self.tables[devices.name]
        for envelope in batch:  # a handful per batch: devices are paired rarely
            event = envelope.event
            if isinstance(event, DevicePaired):
                await conn.execute(table.insert().values(_paired_row(event)))
            elif isinstance(event, DeviceTokenIssued):
                await conn.execute(
                    table.update()
                    .where(table.c.device_id == event.device_id)
                    .values(token_hash=event.token_hash, token_issued_at=event.occurred_at)
                )
            elif isinstance(event, DeviceRevoked):
                await conn.execute(
                    table.update()
                    .where(table.c.device_id == event.device_id)
                    .values(revoked_at=event.occurred_at)
                )


def _paired_row(event: DevicePaired) -> dict[str, Any]:
    return {
        "device_id": event.device_id,
        "profile_id": event.profile_id,
        "user_id": event.user_id,
        "name": event.name,
        "created_at": event.occurred_at,
        "token_hash": None,
        "token_issued_at": None,
        "revoked_at": None,
    }
