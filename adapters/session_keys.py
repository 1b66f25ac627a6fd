"""Where the command side keeps watch sessions in Redis, next to the event log.

The session service (``services.sessions``) writes these keys in the same atomic step as the
events it appends; the command-side check (``projections.recovery``) rewrites them from the
archive when Redis lost its last writes. Both read the layout from here.

Every key written in that step carries the hash tag of the profile's shard (``{3}``, as its
stream does), so that on a Redis Cluster the step touches one slot. A session id alone does not
name its shard: ``shard_route_key`` notes it, written once when the id is handed out.
"""

from __future__ import annotations

SESSION_PREFIX = "medio:session:"
ACTIVE_PREFIX = "medio:sessions:active:"
PROFILE_INDEX_PREFIX = "medio:sessions:profile:"
SEQUENCE_KEY = "medio:sessions:seq"
SHARD_ROUTE_PREFIX = "medio:shard-of:"
STATE_TTL_SECONDS = 30 * 86400

# The names of these keys before they carried their shard's hash tag (``medio migrate`` renames
# them: ``projections.key_migration``).
LEGACY_ACTIVE_INDEX = "medio:sessions:active"


def tag(shard: int) -> str:
    """The hash tag of a shard: every key written with its stream shares it."""
    return f"{{{shard}}}"


def session_key(session_id: int, shard: int) -> str:
    return f"{SESSION_PREFIX}{tag(shard)}:{session_id}"


def active_index(shard: int) -> str:
    """The sorted set of the shard's running sessions by last heartbeat."""
    return f"{ACTIVE_PREFIX}{tag(shard)}"


def profile_index(profile_id: int, shard: int) -> str:
    """The sorted set of a profile's running sessions."""
    return f"{PROFILE_INDEX_PREFIX}{tag(shard)}:{profile_id}"


def shard_route_key(kind: str, entity_id: int) -> str:
    """The shard of an entity known by id alone (``session``, ``time-request``)."""
    return f"{SHARD_ROUTE_PREFIX}{kind}:{entity_id}"
