"""A byte span of a media file, in chunks, read without blocking the event loop on the disk.

Streaming a cached file used to hop to a worker thread for every 1 MB read (anyio's file
API); that hand-off was the largest Python cost of a stream. Here ``preadv`` with
``RWF_NOWAIT`` (Linux) copies whatever the page cache already holds straight in the event
loop, a few hundred microseconds per chunk at most, and only pages that would need the disk
are read in a worker thread. Measured on the 2-core machine (300 MB cached file, old and new
reader alternating in one API process, medians of 10, two runs): 1,108 / 827 -> 1,572 / 1,310
MB/s, API CPU 0.78 / 0.97 -> 0.60 s per GB, level with ``sendfile`` to the same client
(1,577 / 1,306 MB/s). Memory stays one reused chunk buffer plus the chunk being sent.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

CHUNK = 1024 * 1024  # larger chunks measured slower: each one is a fresh allocation
NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


def _cached(fd: int, into: memoryview, offset: int) -> bytes | None:
    """What the page cache holds from ``offset`` (up to ``len(into)``); ``None`` otherwise.

    ``None`` also when the platform or file system has no ``RWF_NOWAIT`` or at the end of the
    file: the caller then reads in a thread, which reports real errors and the end itself.
    """
    if NOWAIT is None:
        return None
    try:
        got = os.preadv(fd, [into], offset, NOWAIT)
    except OSError:  # EAGAIN: not cached; EOPNOTSUPP: not on this file system
        return None
    return bytes(into[:got]) if got else None


async def file_span(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    """``length`` bytes of ``path`` from ``start``, in chunks of at most ``CHUNK`` bytes."""
    fd = await anyio.to_thread.run_sync(os.open, path, os.O_RDONLY)
    try:
        view = memoryview(bytearray(min(CHUNK, length)))
        offset, end = start, start + length
        while offset < end:
            size = min(CHUNK, end - offset)
            chunk = _cached(fd, view[:size], offset)
            if chunk is None:
                chunk = await anyio.to_thread.run_sync(os.pread, fd, size, offset)
                if not chunk:
                    return  # the file is shorter than it was when the span was chosen
            offset += len(chunk)
            yield chunk
    finally:
        os.close(fd)
