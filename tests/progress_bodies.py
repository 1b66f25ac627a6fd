"""Helpers for the progress rules tests: request bodies built from a base, and the field
errors a parser answers for one (shared by the title and the series rules)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec
import pytest

from domain.progress import InvalidProgress


def encoded(base: Mapping[str, object], fields: Mapping[str, object]) -> bytes:
    """``base`` with ``fields`` laid over it, as JSON; a field set to ``...`` is left out."""
    merged = {**base, **fields}
    return msgspec.json.encode({k: v for k, v in merged.items() if v is not ...})


def refused_fields(parse: Callable[[bytes], object], raw: bytes) -> dict[str, str]:
    """The field errors ``parse`` refuses ``raw`` with (it must refuse it)."""
    with pytest.raises(InvalidProgress) as caught:
        parse(raw)
    return caught.value.details
