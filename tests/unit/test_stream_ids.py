"""Pure pieces of the projection engine: stream-id order, command packing, dump diffs."""

from __future__ import annotations

from adapters.msgpack import pack_commands as pack
from adapters.msgpack import pack_raw
from projections.base import stream_id_key
from projections.checkpoints import ZERO, newer
from projections.compare import MAX_REPORTED, differences


def test_stream_ids_compare_as_numbers_not_text() -> None:
    assert "10-0" < "9-1"  # what text order would say
    assert stream_id_key("10-0") > stream_id_key("9-1")
    assert stream_id_key("1732270000000-10") > stream_id_key("1732270000000-9")
    assert stream_id_key("1732270000000") == (1732270000000, 0)


def test_newer_is_strictly_after_the_checkpoint() -> None:
    assert newer("1-1", ZERO)
    assert newer("2-0", "1-99")
    assert not newer("1-5", "1-5")
    assert not newer("1-4", "1-5")


def test_packed_commands_read_back_byte_for_byte_with_numbers_as_redis_text() -> None:
    commands = [
        ("SET", "resume:u:1", b"\x00\xff" * 20, "PXAT", 1795346174854),
        ("ZADD", "k" * 40, 1.5, "x" * 300),
        ("INCRBY", "c", -30000),
    ] + [("DEL", f"k{i}") for i in range(70_000)]
    decoded = _unpack(pack(commands))
    assert decoded[0] == [b"SET", b"resume:u:1", b"\x00\xff" * 20, b"PXAT", b"1795346174854"]
    assert decoded[1] == [b"ZADD", b"k" * 40, b"1.5", b"x" * 300]
    assert decoded[2] == [b"INCRBY", b"c", b"-30000"]
    assert len(decoded) == 70_003 and decoded[-1] == [b"DEL", b"k69999"]


def test_text_is_packed_as_the_byte_for_byte_packer_does() -> None:
    commands = [
        ("SET", "medio:session:1", b'{"a":"\xc3\xa9"}', "EX", 2592000),
        ("ZADD", "medio:sessions:active", 1764558000.123, "1"),
        ("XADD", "s", "*", "t", "é" * 40, "v", 1, "d", b"x" * 70_000),
        ("INCRBY", "c", -30000),
    ]
    assert pack(commands) == pack_raw(commands)
    assert _unpack(pack(commands))[0][2] == '{"a":"é"}'.encode()


def _unpack(data: bytes) -> list[list[bytes]]:
    """The MessagePack subset ``pack`` writes (arrays of raw str), read as Redis's cmsgpack
    does: str bodies as raw bytes (msgspec would insist on UTF-8)."""
    at = 0

    def take(size: int) -> bytes:
        nonlocal at
        at += size
        return data[at - size : at]

    def length(marker: int, small: int, widths: dict[int, int]) -> int:
        if marker & (0xE0 if small == 0xA0 else 0xF0) == small:
            return marker & (0x1F if small == 0xA0 else 0x0F)
        return int.from_bytes(take(widths[marker]), "big")

    def array() -> int:
        return length(take(1)[0], 0x90, {0xDC: 2, 0xDD: 4})

    def string() -> bytes:
        return take(length(take(1)[0], 0xA0, {0xD9: 1, 0xDA: 2, 0xDB: 4}))

    return [[string() for _ in range(array())] for _ in range(array())]


def test_table_differences_name_the_rows_only_one_side_has() -> None:
    live = {"stats_totals": [(1, 100, 2, 1), (2, 50, 1, 1)]}
    rebuilt = {"stats_totals": [(2, 50, 1, 1), (1, 90, 2, 1)]}
    assert differences(live, rebuilt, tables=True) == [
        "stats_totals: only live has (1, 100, 2, 1)",
        "stats_totals: only the rebuild has (1, 90, 2, 1)",
    ]
    assert differences(live, {"stats_totals": list(reversed(live["stats_totals"]))}, True) == []


def test_key_differences_are_listed_and_capped() -> None:
    live = {f"resume:u:{i}": ["{}", 1] for i in range(30)}
    rebuilt = {"resume:u:0": ["{}", 2]}
    found = differences(live, rebuilt)
    assert found[0] == "resume:u:0: live ['{}', 1] != rebuilt ['{}', 2]"
    assert len(found) == MAX_REPORTED + 1
    assert found[-1] == f"... and {30 - MAX_REPORTED} more differences"
