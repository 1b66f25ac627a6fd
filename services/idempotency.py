"""Safe retries (CONTRACT §12): the first answer to a request with an ``Idempotency-Key``.

A record keeps, for 24 hours, what a repeat of the request must get again: the request's
fingerprint (method, path, body) and the first answer (status and body). It is named by a digest
of the caller and the key, so two callers never share a record, and its body is sealed with a
secret derived from the same two (``KeyRef``): the stored answer of a session start holds the
session's token, which only a holder of the key can read back.

The record is written in the same atomic step as the request's effect, so that a crash between
the effect and the answer cannot let a retry act twice:

* Redis effects (events): ``decide_once`` adds the record to ``EventLog.decide``'s
  compare-and-append, and compares the record's key like a state key, so of two racing twins
  only the first appends; the other finds the record and gets its answer (``AlreadyAnswered``).
* SQL effects (catalog rows): ``write_once`` inserts the record in the row's transaction; the
  record's primary key lets only one twin commit, the other rolls back and gets the answer.

Answers that changed nothing (errors) are stored after the fact, if no record exists yet
(``AnswerStore.keep``). A short-lived marker (``claim_running``) lets the HTTP layer answer 409
to a twin while the first request runs; it is a courtesy, the single effect does not rest on it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import msgspec
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.container import Container
from adapters.eventlog import Decision, EventLog
from adapters.scripts import Script
from adapters.tables import idempotency_records

R = TypeVar("R")

RECORD_TTL_SECONDS = 24 * 3600
RECORD_PREFIX = "medio:idem:"
RUNNING_PREFIX = "medio:idem:running:"
NONCE_BYTES = 12
MAX_STORED_BODY = 64 * 1024  # larger answers are not kept (none of the routes sends one)


class Answer(msgspec.Struct, frozen=True):
    """The first answer to a request, and the fingerprint of that request."""

    fingerprint: str
    status: int
    body: str  # the JSON text of the answer, "" when it had none (204)


class AlreadyAnswered(Exception):  # not an error: the request was answered before
    """The key already has an answer: a twin of this request committed first."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


class KeyReused(Exception):
    """The key's answer belongs to another request (another body, path or method)."""

    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was already used for a different request")


def _answered_before(answer: Answer, fingerprint: str) -> AlreadyAnswered | KeyReused:
    """What a command that found ``answer`` under its key raises."""
    return AlreadyAnswered(answer) if answer.fingerprint == fingerprint else KeyReused()


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Answer)


@dataclass(frozen=True)
class KeyRef:
    """A caller's key as the records know it: ``digest`` names its record, ``secret`` seals the
    record's answer. Both are derived from the key, which is never stored, so an answer (a
    session token, say) can only be read back by a request that presents the key again."""

    digest: str
    secret: bytes


def key_ref(caller: str, key: str) -> KeyRef:
    """One record per caller and key (``caller``: ``sub:…``, ``session:…`` or ``ip:…``)."""
    material = f"{caller}\0{key}".encode()
    return KeyRef(scope_digest(caller, key), hashlib.sha256(b"seal\0" + material).digest())


def scope_digest(caller: str, key: str) -> str:
    return hashlib.sha256(f"{caller}\0{key}".encode()).hexdigest()


def sealed(answer: Answer, ref: KeyRef) -> Answer:
    """``answer`` as it is stored: its body encrypted (AES-GCM) with the key's secret."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    box = AESGCM(ref.secret).encrypt(nonce, answer.body.encode(), answer.fingerprint.encode())
    return Answer(answer.fingerprint, answer.status, base64.b64encode(nonce + box).decode())


def opened(stored: Answer, ref: KeyRef) -> Answer:
    """A stored answer readable again."""
    raw = base64.b64decode(stored.body)
    plain = AESGCM(ref.secret).decrypt(
        raw[:NONCE_BYTES], raw[NONCE_BYTES:], stored.fingerprint.encode()
    )
    return Answer(stored.fingerprint, stored.status, plain.decode())


def encode_answer(answer: Answer, ref: KeyRef) -> bytes:
    return _encoder.encode(sealed(answer, ref))


def decode_answer(value: bytes | str, ref: KeyRef) -> Answer:
    return opened(_decoder.decode(value), ref)


def record_key(digest: str, shard: int) -> str:
    """The record of a key's answer, on the shard of the command that stored it (hash-tagged
    as its stream, so the record is written in the command's own atomic step)."""
    return f"{RECORD_PREFIX}{{{shard}}}:{digest}"


@dataclass(frozen=True)
class Receipt(Generic[R]):
    """What a command stores with its effect: the record's key and its answer's rendering.

    ``render`` turns the command's result into the status and body the client is sent; it runs
    inside the atomic step, so it must be pure.
    """

    ref: KeyRef
    fingerprint: str
    render: Callable[[R], tuple[int, bytes]]

    def answer(self, result: R) -> Answer:
        status, body = self.render(result)
        return Answer(self.fingerprint, status, body.decode())


# Redis: events and their record in one compare-and-append --------------------------------------


@dataclass(frozen=True)
class _Found:
    value: bytes


async def decide_once(
    events: EventLog,
    key: str,
    state_keys: Sequence[str],
    decide: Callable[[list[bytes | None]], Decision[R]],
    receipt: Receipt[Any] | None,
) -> R:
    """``EventLog.decide``, with the receipt's record written with the events (if any).

    The record's key is read and compared with the state: if it exists (a twin committed
    first), nothing is decided and ``AlreadyAnswered`` carries the twin's answer (or
    ``KeyReused`` if the twin was another request under the same key).
    """
    if receipt is None:
        return await events.decide(key, state_keys, decide)
    record = record_key(receipt.ref.digest, events.shard_of(key))

    def once(current: list[bytes | None]) -> Decision[R | _Found]:
        found = current[-1]
        if found is not None:
            return Decision(result=_Found(found))
        decision = decide(current[:-1])
        records = dict(decision.records)
        if decision.events:  # an answer that changed nothing is stored after the fact
            answer = receipt.answer(decision.result)
            records[record] = (encode_answer(answer, receipt.ref), RECORD_TTL_SECONDS)
        return replace(decision, records=records)

    outcome = await events.decide(key, [*state_keys, record], once)
    if isinstance(outcome, _Found):
        answer = decode_answer(outcome.value, receipt.ref)
        raise _answered_before(answer, receipt.fingerprint)
    return outcome


# SQL: the row and its record in one transaction ------------------------------------------------


def _expired(digest: str, now: datetime) -> sa.Delete:
    return idempotency_records.delete().where(
        idempotency_records.c.digest == digest, idempotency_records.c.expires_at <= now
    )


def _insert(ref: KeyRef, answer: Answer, now: datetime) -> sa.Insert:
    stored = sealed(answer, ref)
    return idempotency_records.insert().values(
        digest=ref.digest,
        fingerprint=stored.fingerprint,
        status=stored.status,
        body=stored.body,
        expires_at=now + timedelta(seconds=RECORD_TTL_SECONDS),
    )


async def sql_answer(
    db: AsyncEngine | AsyncConnection, ref: KeyRef, now: datetime
) -> Answer | None:
    """The answer stored under ``ref``, unless it has expired."""
    query = sa.select(
        idempotency_records.c.fingerprint, idempotency_records.c.status, idempotency_records.c.body
    ).where(idempotency_records.c.digest == ref.digest, idempotency_records.c.expires_at > now)
    if isinstance(db, AsyncEngine):
        async with db.connect() as conn:
            row = (await conn.execute(query)).first()
    else:
        row = (await db.execute(query)).first()
    return opened(Answer(row.fingerprint, int(row.status), row.body), ref) if row else None


async def write_once(
    db: AsyncEngine | AsyncConnection,
    receipt: Receipt[R],
    now: datetime,
    effect: Callable[[AsyncConnection], Awaitable[R]],
) -> R:
    """Run ``effect`` and insert the receipt's record in one transaction (a savepoint when
    ``db`` is already a connection); ``AlreadyAnswered`` if a twin's record won
    (``KeyReused`` if that twin was another request under the key)."""

    async def both(conn: AsyncConnection) -> R:
        result = await effect(conn)
        await conn.execute(_expired(receipt.ref.digest, now))
        await conn.execute(_insert(receipt.ref, receipt.answer(result), now))
        return result

    try:
        if isinstance(db, AsyncEngine):
            async with db.begin() as conn:
                return await both(conn)
        async with db.begin_nested():
            return await both(db)
    except sa.exc.IntegrityError:
        answer = await sql_answer(db, receipt.ref, now)
        if answer is None:  # the effect's own constraint, not the record's
            raise
        raise _answered_before(answer, receipt.fingerprint) from None


async def prune_expired(engine: AsyncEngine, now: datetime) -> int:
    """Delete records past their 24 hours; how many (hourly: ``workers/pruning.py``)."""
    async with engine.begin() as conn:
        result = await conn.execute(
            idempotency_records.delete().where(idempotency_records.c.expires_at <= now)
        )
    return int(result.rowcount or 0)


# Where a route's answers are looked up and kept after the fact ---------------------------------


class AnswerStore(Protocol):
    """Redis for routes whose effect is an event, SQL for routes whose effect is a row."""

    async def get(self, container: Container, ref: KeyRef) -> Answer | None: ...

    async def keep(self, container: Container, ref: KeyRef, answer: Answer) -> None: ...


class RedisAnswers:
    """A route's request does not name its shard before it runs, so its record is looked up on
    every shard (one round trip; a cluster's cross-slot ``MGET`` is split per key)."""

    async def get(self, container: Container, ref: KeyRef) -> Answer | None:
        keys = [record_key(ref.digest, shard) for shard in range(container.events.shards)]
        values = await container.pipeline.execute("MGET", *keys)
        value = next((v for v in values if v), None)
        return decode_answer(value, ref) if value else None

    async def keep(self, container: Container, ref: KeyRef, answer: Answer) -> None:
        """Unless the effect stored one already (then it is the same answer): kept on shard 0,
        which ``get`` reads too."""
        await container.redis.set(
            record_key(ref.digest, 0), encode_answer(answer, ref), ex=RECORD_TTL_SECONDS, nx=True
        )


class SqlAnswers:
    async def get(self, container: Container, ref: KeyRef) -> Answer | None:
        return await sql_answer(container.engine, ref, container.clock.now())

    async def keep(self, container: Container, ref: KeyRef, answer: Answer) -> None:
        """Unless the effect stored one already (then it is the same answer)."""
        now = container.clock.now()
        try:
            async with container.engine.begin() as conn:
                await conn.execute(_expired(ref.digest, now))
                await conn.execute(_insert(ref, answer, now))
        except sa.exc.IntegrityError:
            pass


REDIS_ANSWERS = RedisAnswers()
SQL_ANSWERS = SqlAnswers()


# The running marker -----------------------------------------------------------------------------

_RELEASE = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")


async def claim_running(container: Container, digest: str, seconds: int) -> str | None:
    """Mark the key's request as running for up to ``seconds``; ``None`` if a twin holds it."""
    token = secrets.token_hex(8)
    claimed = await container.redis.set(RUNNING_PREFIX + digest, token, ex=seconds, nx=True)
    return token if claimed else None


async def release_running(container: Container, digest: str, token: str) -> None:
    """Remove the marker if it is still this request's."""
    await _RELEASE.run(container.redis, [RUNNING_PREFIX + digest], token)
