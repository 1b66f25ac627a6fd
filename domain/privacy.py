"""Whose personal data an event carries: the subject whose key seals it in the archive.

Two kinds of subject, each with a key of its own (``adapters.keyring``), so that one child can
be erased without the rest of the family:

* a **family** (an account, the token's ``sub``): its progress and series progress events;
* a **child** (a profile): its session events, its paired devices' events, its parental
  policy's events (settings, bonuses, locks, stops, requests for time with their messages)
  and the stats carried past the retention horizon.

Erasing a family destroys its key and the keys of all its children. An event of neither kind
(a pairing started, an erasure, a retention run) carries no personal data and is archived in
the clear.

What is personal: every field of a subject's event body, the common ``actor`` included (a
parent's ``sub``, a session or profile id), since ids, titles watched, positions and watch
times together describe a child's viewing. The archive keeps in the clear only an event's
``type``, ``version``, ``occurred_at`` and its place in the log (docs/events.md).
"""

from __future__ import annotations

from domain.events import (
    AnyEvent,
    BonusGranted,
    DevicePaired,
    DeviceRevoked,
    DeviceTokenIssued,
    PolicySet,
    ProfileLocked,
    ProfileUnlocked,
    ProgressDeleted,
    ProgressSaved,
    SeriesProgressDeleted,
    SeriesProgressSaved,
    SessionEnded,
    SessionHeartbeat,
    SessionStarted,
    SessionStopRequested,
    StatsCarried,
    TimeRequestDecided,
    TimeRequested,
)

# The events holding personal data: a family's own (named by ``clerk_id``), sealed with the
# family's key, and a child's (named by ``profile_id``), sealed with the child's.
FAMILY_EVENTS = (ProgressSaved, ProgressDeleted, SeriesProgressSaved, SeriesProgressDeleted)
CHILD_EVENTS = (
    SessionStarted,
    SessionHeartbeat,
    SessionEnded,
    DevicePaired,
    DeviceTokenIssued,
    DeviceRevoked,
    StatsCarried,
    SessionStopRequested,
    PolicySet,
    BonusGranted,
    ProfileLocked,
    ProfileUnlocked,
    TimeRequested,
    TimeRequestDecided,
)


def family_subject(clerk_id: str) -> str:
    """The subject of a family's own data: the account's ``sub``."""
    return f"family:{clerk_id}"


def profile_subject(profile_id: int) -> str:
    """The subject of one child's data."""
    return f"profile:{profile_id}"


def subject_of(event: AnyEvent) -> str | None:
    """The subject whose key seals ``event``, or ``None`` when it carries no personal data."""
    if isinstance(event, CHILD_EVENTS):
        return profile_subject(event.profile_id)
    if isinstance(event, FAMILY_EVENTS):
        return family_subject(event.clerk_id)
    return None
