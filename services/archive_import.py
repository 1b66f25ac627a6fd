"""``medio events import``: load a JSON Lines export into an empty archive.

The other half of the round trip export -> import -> ``medio replay``: rows keep their
position, shard, stream id, type, version, actor and the event JSON byte for byte, so the
projections rebuilt from the imported archive equal the ones the export came from.

Bodies are sealed again as the archive writer seals them (``projections.archive``), with this
deployment's keys; a line exported as erased (``data`` null) stays erased.

The whole file loads in one transaction (inserted in batches, so memory stays flat): a bad
line anywhere leaves the archive empty, ready for a corrected retry. The same transaction moves
the archive's checkpoint in each shard to the newest imported stream entry, as the archive
writer would have: replay then hands the projections that checkpoint, and ``--verify`` and the
live projectors agree with it about what the archive holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.archive_partitions import ensure_room
from adapters.keyring import ERASED_KEY, Keyring
from adapters.settings import get_settings
from adapters.tables import events
from domain.codec import UnknownEvent, decode
from domain.privacy import subject_of
from projections.archive import POSITION_LOCK_KEY, Archive, place_of
from projections.base import stream_id_key
from projections.checkpoints import lock_sql_checkpoints, newer, write_sql_checkpoints

IMPORT_BATCH_SIZE = 5_000

Progress = Callable[[int, int], None]  # (bytes read, bytes in total)


class ImportRefused(RuntimeError):
    """The file or the archive is not fit for an import; the message says which line or why."""


class ImportLine(msgspec.Struct, frozen=True):
    """One record of a JSON Lines export (``id`` is derived, so it is read and ignored)."""

    position: int
    shard: int
    stream_id: str
    type: str
    version: int
    occurred_at: datetime
    actor: str
    data: msgspec.Raw
    id: str | None = None
    erased: bool = False


_decoder = msgspec.json.Decoder(ImportLine)


def _row(line: bytes, number: int, previous: int) -> dict[str, Any]:
    try:
        record = _decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise ImportRefused(f"line {number}: not an exported event ({exc})") from None
    data = bytes(record.data)
    if record.erased or data == b"null":
        data = b""
    elif not data.startswith(b"{"):
        raise ImportRefused(f"line {number}: data must be a JSON object")
    if record.occurred_at.tzinfo is None:
        raise ImportRefused(f"line {number}: occurred_at must carry a time zone (Z)")
    if record.position <= previous:
        raise ImportRefused(f"line {number}: positions must increase (got {record.position})")
    return {
        "position": record.position,
        "shard": record.shard,
        "stream_id": record.stream_id,
        "type": record.type,
        "version": record.version,
        "occurred_at": record.occurred_at,
        "actor": record.actor,
        "data": data,
    }


async def _sealed(
    conn: AsyncConnection, keyring: Keyring, batch: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows of ``batch`` as the archive stores them: personal bodies sealed."""
    bodies: list[tuple[str | None, str, bytes]] = []
    for row in batch:
        data: bytes = row["data"]
        try:
            subject = subject_of(decode(row["type"], row["version"], data)) if data else None
        except UnknownEvent:
            subject = None  # a type this code cannot read: kept as it came
        bodies.append((subject, place_of(row["shard"], row["stream_id"]), data))
    sealed = await keyring.seal(conn, [b for b in bodies if b[2]])
    kept = iter(sealed)
    rows = []
    for row, (_, _, data) in zip(batch, bodies, strict=True):
        key_id, stored = next(kept) if data else (ERASED_KEY, "")
        actor = row["actor"] if key_id is None else ""
        rows.append({**row, "actor": actor, "data": stored, "key_id": key_id})
    return rows


def _batches(path: Path, on_progress: Progress | None) -> Iterator[list[dict[str, Any]]]:
    total = path.stat().st_size
    done = 0
    previous = 0
    batch: list[dict[str, Any]] = []
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            done += len(line)
            if not line.strip():
                continue
            row = _row(line, number, previous)
            previous = row["position"]
            batch.append(row)
            if len(batch) >= IMPORT_BATCH_SIZE:
                yield batch
                batch = []
                if on_progress:
                    on_progress(done, total)
    if batch:
        yield batch
    if on_progress:
        on_progress(total, total)


async def _advance_archive_checkpoints(conn: AsyncConnection, newest: dict[int, str]) -> None:
    """Tell the archive writer what it now holds (never moving a checkpoint backwards)."""
    for shard, stream_id in sorted(newest.items()):
        current = (await lock_sql_checkpoints(conn, [Archive.name], shard))[Archive.name]
        if newer(stream_id, current):
            await write_sql_checkpoints(conn, [Archive.name], stream_id, shard)


async def import_events(
    engine: AsyncEngine, keyring: Keyring, source: Path, on_progress: Progress | None = None
) -> int:
    """Load a JSON Lines export into the archive, which must be empty; returns the count."""
    count = 0
    newest: dict[int, str] = {}
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # positions are the archive writer's to give
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(POSITION_LOCK_KEY)))
        if await conn.scalar(sa.select(events.c.position).limit(1)) is not None:
            raise ImportRefused(
                "the archive is not empty; import only into a fresh database "
                "(run `medio migrate` against a new MEDIO_DATABASE_URL)"
            )
        settings = get_settings()
        size, ahead = settings.archive_partition_size, settings.archive_partitions_ahead
        for batch in _batches(source, on_progress):
            await ensure_room(conn, max(row["position"] for row in batch), size, ahead)
            await conn.execute(events.insert(), await _sealed(conn, keyring, batch))
            count += len(batch)
            for row in batch:
                shard, stream_id = row["shard"], row["stream_id"]
                if shard not in newest or stream_id_key(stream_id) > stream_id_key(newest[shard]):
                    newest[shard] = stream_id
        await _advance_archive_checkpoints(conn, newest)
    return count
