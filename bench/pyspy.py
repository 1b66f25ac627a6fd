"""Profiles of benchmark processes with py-spy: where the CPU went, as a short ranked list.

``recording`` samples running processes (and their children: uvicorn workers, RQ work
horses) for a number of seconds into py-spy's raw (collapsed stack) files; ``summary`` ranks
functions by the share of samples in which they were on top of the stack (self) and anywhere
on it (inclusive, Medio's own modules only: the framework frames above them say little).
Idle threads are not sampled, so the shares are of busy time.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OWN_MODULES = ("api/", "medio/", "domain/", "projections/", "workers/", "bench/")


def executable() -> str | None:
    """py-spy from this virtualenv (``pip install py-spy``) or the ``PATH``."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def recording(pids: dict[str, int], seconds: float, directory: Path) -> Iterator[dict[str, Path]]:
    """Sample each named process tree for ``seconds``; yields ``{name: raw file}``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: directory / f"{name}.raw" for name in pids}
    spy_command = executable()
    if spy_command is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    spies = [
        subprocess.Popen(
            [
                spy_command,
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--nonblocking",
                "--function",
                "--format",
                "raw",
                "--duration",
                str(max(1, round(seconds))),
                "--output",
                str(files[name]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    try:
        yield files
    finally:
        for spy in spies:
            try:
                spy.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()


def _frame(frame: str) -> str:
    """``handler (api/progress.py:71)`` -> ``handler (api/progress.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summary(path: Path, top: int = 12) -> dict[str, Any]:
    """The ``top`` functions by self and by inclusive share of the samples in ``path``."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    if not path.exists():
        return {"samples": 0, "self": [], "inclusive": []}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit() or not stack.startswith("process "):
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")[1:]]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            if name.partition(" (")[2].startswith(OWN_MODULES):
                inclusive[name] += count

    def ranked(counter: collections.Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    return {"samples": total, "self": ranked(own), "inclusive": ranked(inclusive)}


def print_summary(name: str, found: dict[str, Any]) -> None:
    print(f"  profile {name}: {found['samples']} samples; self % (inclusive % below)")
    for function, share in found["self"]:
        print(f"    {share:5.1f}  {function}")
    for function, share in found["inclusive"]:
        print(f"    {share:5.1f}* {function}")
