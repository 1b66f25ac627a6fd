"""``adapters.file_span``: exact spans, whether the pages are cached or must come from the disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from adapters import file_span as module
from adapters.file_span import CHUNK, file_span

SIZE = 3 * CHUNK + 12345


@pytest.fixture
def video(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path / "video.mp4"
    path.write_bytes(data)
    return path, data


async def _read(path: Path, start: int, length: int) -> list[bytes]:
    return [chunk async for chunk in file_span(path, start, length)]


def _drop_from_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("start", "length"),
    [(0, SIZE), (1, CHUNK), (CHUNK - 1, 2), (SIZE - 1, 1), (100, 2 * CHUNK + 7), (0, 0)],
)
async def test_span_is_exactly_those_bytes_in_chunks_of_at_most_chunk(
    video: tuple[Path, bytes], start: int, length: int
) -> None:
    path, data = video
    chunks = await _read(path, start, length)
    assert b"".join(chunks) == data[start : start + length]
    assert all(0 < len(chunk) <= CHUNK for chunk in chunks)


async def test_pages_not_in_the_cache_are_read_all_the_same(video: tuple[Path, bytes]) -> None:
    path, data = video
    _drop_from_cache(path)
    assert b"".join(await _read(path, 10, SIZE - 10)) == data[10:]


async def test_without_nowait_reads_every_chunk_in_a_thread(
    video: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, data = video
    monkeypatch.setattr(module, "NOWAIT", None)
    assert b"".join(await _read(path, 5, SIZE - 5)) == data[5:]


async def test_a_file_shorter_than_the_span_ends_the_stream(video: tuple[Path, bytes]) -> None:
    path, data = video
    chunks = file_span(path, 0, SIZE)
    first = await anext(chunks)
    os.truncate(path, CHUNK + 10)
    rest = [chunk async for chunk in chunks]
    assert first + b"".join(rest) == data[: CHUNK + 10]


@pytest.mark.skipif(module.NOWAIT is None, reason="no RWF_NOWAIT on this platform")
async def test_cached_pages_are_read_without_a_thread(
    video: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, data = video
    in_threads: list[object] = []
    run_sync = module.anyio.to_thread.run_sync

    async def recording(function: Any, *args: Any) -> Any:
        in_threads.append(function)
        return await run_sync(function, *args)

    monkeypatch.setattr(module.anyio.to_thread, "run_sync", recording)
    assert b"".join(await _read(path, 0, SIZE)) == data  # just written: every page is cached
    assert os.pread not in in_threads
