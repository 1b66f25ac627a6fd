"""How a batch of commands is cut for a Redis Cluster (``adapters.cluster``)."""

from __future__ import annotations

from redis.exceptions import ResponseError

from adapters.cluster import command_slot, expand, group_by_slot, slot_of


def test_cross_slot_multi_key_commands_are_split_per_key_and_joined_back() -> None:
    commands = [
        ("MGET", "a", "b", "c"),  # three slots
        ("GET", "x"),
        ("DEL", "a", "b"),
        ("MGET", "k:{3}:1", "k:{3}:2"),  # one slot: left whole
    ]
    flat, join = expand(commands)
    assert flat == [
        ("GET", "a"),
        ("GET", "b"),
        ("GET", "c"),
        ("GET", "x"),
        ("DEL", "a"),
        ("DEL", "b"),
        ("MGET", "k:{3}:1", "k:{3}:2"),
    ]
    replies = [b"1", None, b"3", b"x", 1, 0, [b"p", b"q"]]
    assert join(replies) == [[b"1", None, b"3"], b"x", 1, [b"p", b"q"]]


def test_an_error_in_one_part_is_the_joined_commands_reply() -> None:
    _flat, join = expand([("MGET", "a", "b"), ("GET", "c")])
    error = ResponseError("WRONGTYPE")
    assert join([b"1", error, b"c"]) == [error, b"c"]


def test_commands_group_by_the_slot_of_their_key_in_order() -> None:
    commands = [("SET", "k:{1}:a", "1"), ("GET", "other"), ("SET", "k:{1}:b", "2")]
    groups = group_by_slot(commands)
    assert groups[slot_of("{1}")] == [0, 2]
    assert groups[slot_of("other")] == [1]
    assert command_slot(("EVALSHA", "sha", 1, "medio:events:{3}")) == slot_of("{3}")
    assert command_slot(("EVALSHA", "sha", 0)) is None
