"""Encode events for the log and decode them from any version ever written.

An event is stored as three fields: its type, its schema version and its JSON body. Reading
an older version runs it through the upcaster chain (``v1 -> v2 -> ...``) before it becomes
the current struct, so projectors only ever see current shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from domain.events import EVENT_TYPES, AnyEvent, event_type

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEvent(ValueError):
    """The bytes are not an event this code can read (unknown type, bad JSON, future version)."""


def _progress_saved_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 (the Express era) knew only the position; v2 adds the title's duration."""
    return {**data, "duration": None, "finished": False}


# (type, from_version) -> function producing from_version + 1
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("progress.saved", 1): _progress_saved_v1_to_v2,
}

CURRENT_VERSION: dict[str, int] = {name: 1 for name in EVENT_TYPES}
CURRENT_VERSION["progress.saved"] = 2

_encoder = msgspec.json.Encoder()
_decoders = {name: msgspec.json.Decoder(cls) for name, cls in EVENT_TYPES.items()}


def encode(event: AnyEvent) -> tuple[str, int, bytes]:
    """``(type, version, json)`` for the current version of ``event``."""
    name = event_type(event)
    return name, CURRENT_VERSION[name], _encoder.encode(event)


def decode(name: str, version: int, data: bytes | str) -> AnyEvent:
    """Read any stored version of an event as the current struct."""
    decoder = _decoders.get(name)
    current = CURRENT_VERSION.get(name)
    if decoder is None or current is None:
        raise UnknownEvent(f"unknown event type {name!r}")
    try:
        if version == current:
            return decoder.decode(data)
        if version > current or version < 1:
            raise UnknownEvent(f"{name} version {version} is not readable (current {current})")
        body: dict[str, Any] = msgspec.json.decode(data)
        for step in range(version, current):
            upcast = UPCASTERS.get((name, step))
            if upcast is None:
                raise UnknownEvent(f"no upcaster for {name} v{step}")
            body = upcast(body)
        body["type"] = name
        return msgspec.convert(body, EVENT_TYPES[name], strict=False)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UnknownEvent(f"{name} v{version}: {exc}") from None
