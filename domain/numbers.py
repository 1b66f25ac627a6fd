"""JSON numbers as the API reads them: JSON Schema's ``integer`` counts ``5.0`` as one."""

from __future__ import annotations


def json_integer(value: object) -> int | None:
    """``value`` as a JSON integer, or ``None``: an int (not a bool), or a float with no
    fraction, since JSON Schema's ``integer`` (the documented type) counts ``5.0`` as one and
    clients that hold every number as a double send it so."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return None


def whole_in(value: object, low: int, high: int) -> int | None:
    """``value`` as a JSON integer (``json_integer``) within ``low..high``, else ``None``."""
    number = json_integer(value)
    return number if number is not None and low <= number <= high else None
