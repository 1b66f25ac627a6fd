"""Redis commands packed as one MessagePack argument for a script (``cmsgpack`` is built in).

Sending a script one packed argument instead of many costs redis-py one argument to encode
and Redis one to parse; the script unpacks and runs the commands itself.

Arguments travel as MessagePack ``str``, the one string type ``cmsgpack`` reads (it has no
``bin``). Text, which is every argument Medio sends (JSON, keys, ids, numbers), is packed by
msgspec in C: half the CPU of packing in Python, which showed in a heartbeat's profile and
in replay's. Bytes that are not UTF-8 (msgspec will not put them in a ``str``) are packed
byte for byte in Python instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

_encoder = msgspec.msgpack.Encoder()

# The first line of every script that reads packed commands. Every Redis Medio runs on has
# ``cmsgpack`` (``medio dev`` too: a real redis-server or Valkey, ``medio.embedded``).
UNPACK_COMMANDS_LUA = "local unpack_commands = cmsgpack.unpack\n"


def _bytes(value: Any) -> bytes:
    """An argument as redis-py would send it (numbers as their text)."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


def _array(out: bytearray, size: int) -> None:
    if size < 16:
        out.append(0x90 | size)
    elif size < 65536:
        out += b"\xdc" + size.to_bytes(2, "big")
    else:
        out += b"\xdd" + size.to_bytes(4, "big")


def _string(out: bytearray, data: bytes) -> None:
    size = len(data)
    if size < 32:
        out.append(0xA0 | size)
    elif size < 256:
        out += bytes((0xD9, size))
    elif size < 65536:
        out += b"\xda" + size.to_bytes(2, "big")
    else:
        out += b"\xdb" + size.to_bytes(4, "big")
    out += data


def pack_commands(commands: Sequence[Sequence[Any]]) -> bytes:
    """Commands as a MessagePack array of arrays of strings, the one shape ``cmsgpack`` reads
    back byte for byte."""
    try:
        return _encoder.encode(
            [[arg if type(arg) is str else _bytes(arg).decode() for arg in c] for c in commands]
        )
    except UnicodeDecodeError:
        return pack_raw(commands)


def pack_raw(commands: Sequence[Sequence[Any]]) -> bytes:
    """``pack_commands`` written out in Python, for arguments that are not all text."""
    out = bytearray()
    _array(out, len(commands))
    for command in commands:
        _array(out, len(command))
        for arg in command:
            _string(out, arg.encode() if type(arg) is str else _bytes(arg))
    return bytes(out)
