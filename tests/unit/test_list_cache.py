"""The per-process list cache: a list is answered from memory only at its version, while live."""

from __future__ import annotations

from adapters.list_cache import ListCache, Listed

KEY = ("resume", "user_1", 100)


class Loads:
    """A loader that counts its calls and answers the list it is set to."""

    def __init__(self, entries: list[str], live_until_ms: float | None = None) -> None:
        self.entries = entries
        self.live_until_ms = live_until_ms
        self.calls = 0

    async def __call__(self) -> Listed[str]:
        self.calls += 1
        return Listed(list(self.entries), self.live_until_ms)


async def test_a_list_is_kept_at_its_version_and_reloaded_at_a_new_one() -> None:
    cache, load = ListCache(), Loads(["a", "b"])
    assert await cache.read(KEY, b"1-0", 0, load) == ["a", "b"]
    assert await cache.read(KEY, b"1-0", 0, load) == ["a", "b"]
    assert load.calls == 1
    load.entries = ["c"]
    assert await cache.read(KEY, b"2-0", 0, load) == ["c"]
    assert load.calls == 2


async def test_without_a_version_nothing_is_kept() -> None:
    cache, load = ListCache(), Loads(["a"])
    await cache.read(KEY, None, 0, load)
    await cache.read(KEY, None, 0, load)
    assert load.calls == 2
    # and a list kept under a version is not answered when the version has gone
    await cache.read(KEY, b"1-0", 0, load)
    await cache.read(KEY, None, 0, load)
    assert load.calls == 4


async def test_a_kept_list_is_not_answered_once_its_oldest_entry_lapsed() -> None:
    cache, load = ListCache(), Loads(["a"], live_until_ms=1_000)
    await cache.read(KEY, b"1-0", 999, load)
    await cache.read(KEY, b"1-0", 999, load)
    assert load.calls == 1
    load.entries, load.live_until_ms = [], None
    assert await cache.read(KEY, b"1-0", 1_000, load) == []
    assert load.calls == 2


async def test_each_user_and_limit_is_kept_apart_and_the_least_recent_goes_first() -> None:
    cache = ListCache(size=2)
    loads = {user: Loads([user]) for user in ("u1", "u2", "u3")}
    for user in ("u1", "u2"):
        await cache.read(("resume", user, 100), b"v", 0, loads[user])
    await cache.read(("resume", "u1", 100), b"v", 0, loads["u1"])  # u1 is now the most recent
    await cache.read(("resume", "u3", 100), b"v", 0, loads["u3"])  # pushes u2 out
    await cache.read(("resume", "u1", 100), b"v", 0, loads["u1"])
    await cache.read(("resume", "u2", 100), b"v", 0, loads["u2"])
    assert (loads["u1"].calls, loads["u2"].calls, loads["u3"].calls) == (1, 2, 1)
    other_limit = Loads(["x"])
    assert await cache.read(("resume", "u1", 5), b"v", 0, other_limit) == ["x"]


async def test_an_answer_is_the_callers_to_change() -> None:
    cache, load = ListCache(), Loads(["a"])
    first = await cache.read(KEY, b"1-0", 0, load)
    first.append("mine")
    assert await cache.read(KEY, b"1-0", 0, load) == ["a"]
