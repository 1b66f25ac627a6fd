"""Privacy keys: one AES-256-GCM data key per family and per child, wrapped by a master key.

Crypto-shredding (DESIGN.md, "Privacy by design"): the archive keeps the body of every event
that belongs to a family or a child sealed with that subject's key (``domain.privacy`` says
which subject an event belongs to). Deleting the key erases the body wherever the ciphertext
went (the archive, database replicas and backups), while the event keeps its place, type and
time.

* ``privacy_keys`` holds each data key sealed by ``MEDIO_MASTER_KEY`` (AES-GCM with the
  subject as associated data, so a wrapped key copied to another row does not open).
* An event body is sealed with a fresh 12-byte nonce and its place in the log
  (``<shard>-<stream id>``) as associated data, and stored as base64 of nonce + ciphertext.
* Unwrapped keys are kept per process by id (ids are never reused), but one is used only after
  the database has said, in the caller's transaction, that the key still exists: a key that
  another process deleted is never used to seal or to open.

Work shared by a batch: one query for all its subjects' keys, one ``os.urandom`` call for all
its nonces, one ``AESGCM`` object per key; what remains per event is the encryption itself
(about 0.5 µs for a 250-byte body, measured).

The master key comes from ``MEDIO_MASTER_KEY``; outside production one is made once under the
data dir (``master-key``, mode 0600, created exclusively so that processes starting together
agree on it). Neither key ever appears in a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.settings import MASTER_KEY_BYTES, Settings, SettingsError, master_key_bytes
from adapters.tables import privacy_keys

MASTER_KEY_FILE = "master-key"
NONCE_BYTES = 12
DATA_KEY_BYTES = 32
CACHED_KEYS = 100_000  # unwrapped keys kept per process
ERASED_KEY = 0  # no key has this id: a row stored with it (and no data) was erased elsewhere

# (key id or None for a body kept in the clear, the stored text)
Sealed = tuple[int | None, str]


def load_master_key(settings: Settings) -> bytes:
    """``MEDIO_MASTER_KEY``, or outside production the one kept under the data dir."""
    if settings.master_key is not None:
        key = master_key_bytes(settings.master_key)
        assert key is not None  # checked by Settings
        return key
    if settings.env == "production":
        raise SettingsError("MEDIO_MASTER_KEY is not set")
    path = settings.data_path / MASTER_KEY_FILE
    if not path.exists():
        _create_exclusively(path, base64.urlsafe_b64encode(os.urandom(MASTER_KEY_BYTES)))
    key = master_key_bytes(path.read_text())
    if key is None:
        raise SettingsError(f"{path} does not hold a master key; restore it from your backup")
    return key


def _create_exclusively(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` unless another process got there first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}-{secrets.token_hex(4)}")
    temporary.write_bytes(content)
    temporary.chmod(0o600)
    try:
        os.link(temporary, path)  # fails if it exists: the first writer wins
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


class Keyring:
    """Data keys of families and children, found or made in the caller's transaction."""

    def __init__(self, master: bytes) -> None:
        self._master = AESGCM(master)
        # By wrapped key (its random nonce makes it unique): a key id names different keys in
        # different databases, and one process (a test run, a migration) may open several.
        self._ciphers: dict[bytes, AESGCM] = {}

    def _unwrap(self, subject: str, wrapped: bytes) -> AESGCM:
        cipher = self._ciphers.get(wrapped)
        if cipher is None:
            nonce, sealed = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
            cipher = AESGCM(self._master.decrypt(nonce, sealed, subject.encode()))
            if len(self._ciphers) >= CACHED_KEYS:
                self._ciphers.clear()
            self._ciphers[wrapped] = cipher
        return cipher

    def _wrap(self, subject: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        key = os.urandom(DATA_KEY_BYTES)
        return nonce + self._master.encrypt(nonce, key, subject.encode())

    async def subject_keys(
        self, conn: AsyncConnection, subjects: Collection[str]
    ) -> dict[str, tuple[int, AESGCM]]:
        """Each subject's key id and cipher, making the keys that do not exist yet."""
        if not subjects:
            return {}
        found = await self._select(conn, privacy_keys.c.subject.in_(list(subjects)))
        missing = sorted(s for s in subjects if s not in found)  # one lock order for all writers
        if missing:
            now = datetime.now(UTC)
            insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(
                privacy_keys
            )
            await conn.execute(
                insert.on_conflict_do_nothing(index_elements=[privacy_keys.c.subject]),
                [{"subject": s, "wrapped": self._wrap(s), "created_at": now} for s in missing],
            )
            found.update(await self._select(conn, privacy_keys.c.subject.in_(missing)))
        return found

    async def ciphers(self, conn: AsyncConnection, key_ids: Collection[int]) -> dict[int, AESGCM]:
        """The ciphers of those of ``key_ids`` that still exist (a missing one was erased)."""
        if not key_ids:
            return {}
        found = await self._select(conn, privacy_keys.c.id.in_(sorted(key_ids)))
        return dict(found.values())

    async def _select(
        self, conn: AsyncConnection, where: sa.ColumnElement[bool]
    ) -> dict[str, tuple[int, AESGCM]]:
        table = privacy_keys
        query = sa.select(table.c.id, table.c.subject, table.c.wrapped).where(where)
        rows = await conn.execute(query)
        return {
            subject: (int(key_id), self._unwrap(subject, bytes(wrapped)))
            for key_id, subject, wrapped in rows
        }

    async def seal(
        self, conn: AsyncConnection, bodies: Sequence[tuple[str | None, str, bytes]]
    ) -> list[Sealed]:
        """``(subject or None, place in the log, JSON body)`` -> what the archive stores.

        A body with no subject (an event without personal data) is kept as it is.
        """
        keys = await self.subject_keys(conn, {s for s, _, _ in bodies if s is not None})
        nonces = os.urandom(NONCE_BYTES * len(bodies))
        sealed: list[Sealed] = []
        for i, (subject, place, body) in enumerate(bodies):
            if subject is None:
                sealed.append((None, body.decode()))
                continue
            key_id, cipher = keys[subject]
            nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
            data = nonce + cipher.encrypt(nonce, body, place.encode())
            sealed.append((key_id, base64.b64encode(data).decode()))
        return sealed

    async def open(
        self, conn: AsyncConnection, stored: Sequence[tuple[int | None, str, str]]
    ) -> list[bytes | None]:
        """``(key id, place in the log, stored text)`` -> the JSON body, or ``None`` if erased."""
        ciphers = await self.ciphers(conn, {k for k, _, _ in stored if k is not None})
        return [open_one(ciphers, key_id, place, data) for key_id, place, data in stored]


def open_one(ciphers: dict[int, AESGCM], key_id: int | None, place: str, data: str) -> bytes | None:
    """One stored body in the clear, or ``None`` when its key is gone or it was shredded."""
    if key_id is None:
        return data.encode()
    cipher = ciphers.get(key_id)
    if cipher is None or not data:
        return None
    try:
        raw = base64.b64decode(data)
        return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], place.encode())
    except (InvalidTag, ValueError, binascii.Error):
        return None


async def delete_keys(conn: AsyncConnection, subjects: Collection[str]) -> int:
    """Delete the subjects' keys (crypto-shredding their events); how many there were."""
    if not subjects:
        return 0
    result = await conn.execute(
        privacy_keys.delete().where(privacy_keys.c.subject.in_(list(subjects)))
    )
    return int(result.rowcount or 0)


@lru_cache(maxsize=4)
def _keyring(master: bytes) -> Keyring:
    return Keyring(master)


def keyring_for(settings: Settings) -> Keyring:
    """The process's keyring for the master key ``settings`` name (one per master key)."""
    return _keyring(load_master_key(settings))
