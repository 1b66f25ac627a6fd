"""Text rules said as JSON Schema patterns, for the body structs' ``Meta`` constraints.

A JSON body may hold no NUL anywhere (``api.limits``), and the seed bounds names and titles
after surrounding whitespace is stripped, so their lengths are written in a pattern: what lies
between the first and the last character that is not whitespace. Whitespace is Python's
``str.strip`` set, spelled out (ECMA's ``\\s`` differs from it); the patterns mean the same in
Python's ``re`` (which ``msgspec`` uses) and in ECMA regular expressions (JSON Schema's).
"""

from __future__ import annotations

NO_NUL = "^[^\\x00]*$"

_WS = (
    "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0"
    "\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
_TEXT = f"[^{_WS}\\x00]"  # a character that is neither whitespace nor NUL


def stripped_pattern(least: int, most: int) -> str:
    """Text of ``least`` (1 or 2) to ``most`` characters once surrounding whitespace is gone."""
    middle = f"[^\\x00]{{0,{most - 2}}}{_TEXT}"
    inner = f"{_TEXT}{middle}" if least == 2 else f"{_TEXT}({middle})?"
    return f"^[{_WS}]*{inner}[{_WS}]*$"
