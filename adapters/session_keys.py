"""Where the command side keeps watch sessions in Redis, next to the event log.

The session service (``services.sessions``) writes these keys in the same atomic step as the
events it appends; the command-side check (``projections.recovery``) rewrites them from the
archive when Redis lost its last writes. Both read the layout from here.
"""

from __future__ import annotations

SESSION_PREFIX = "medio:session:"
ACTIVE_INDEX = "medio:sessions:active"
PROFILE_INDEX_PREFIX = "medio:sessions:profile:"
SEQUENCE_KEY = "medio:sessions:seq"
STATE_TTL_SECONDS = 30 * 86400


def session_key(session_id: int) -> str:
    return f"{SESSION_PREFIX}{session_id}"


def profile_index(profile_id: int) -> str:
    """The sorted set of a profile's running sessions."""
    return f"{PROFILE_INDEX_PREFIX}{profile_id}"
