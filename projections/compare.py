"""Readable differences between two dumps of a projection (live versus rebuilt)."""

from __future__ import annotations

from collections import Counter
from typing import Any

MAX_REPORTED = 20


def differences(live: dict[str, Any], rebuilt: dict[str, Any], tables: bool = False) -> list[str]:
    """One line per difference (at most ``MAX_REPORTED``, then a count of the rest).

    With ``tables`` the values are lists of rows, compared as multisets (row order aside).
    """
    found: list[str] = []
    for name in sorted(set(live) | set(rebuilt), key=str):
        if name not in rebuilt:
            found.append(f"{name}: only live has it: {_short(live[name])}")
        elif name not in live:
            found.append(f"{name}: only the rebuild has it: {_short(rebuilt[name])}")
        elif tables:
            found.extend(_rows(name, live[name], rebuilt[name]))
        elif live[name] != rebuilt[name]:
            found.append(f"{name}: live {_short(live[name])} != rebuilt {_short(rebuilt[name])}")
    if len(found) > MAX_REPORTED:
        rest = len(found) - MAX_REPORTED
        return [*found[:MAX_REPORTED], f"... and {rest} more differences"]
    return found


def _rows(table: str, live: list[Any], rebuilt: list[Any]) -> list[str]:
    """Rows of a table that only one side has (as a multiset: duplicates count)."""
    live_rows, rebuilt_rows = Counter(map(_hashable, live)), Counter(map(_hashable, rebuilt))
    lines = [f"{table}: only live has {row}" for row in (live_rows - rebuilt_rows).elements()]
    lines += [
        f"{table}: only the rebuild has {row}" for row in (rebuilt_rows - live_rows).elements()
    ]
    return lines


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
