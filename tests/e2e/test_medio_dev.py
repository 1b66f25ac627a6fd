"""The real ``medio dev`` as a subprocess: embedded defaults, /health, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from test_readme_tour import TOUR_TOOLS, check_tour_output, run_tour, wait_until_serving

from medio.embedded import free_port

START_TIMEOUT_SECONDS = 20


@pytest.fixture
def medio_dev(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``medio dev`` with no servers configured: SQLite and its own Redis under a temp dir."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIO_")}
    env.update({"MEDIO_DATA_DIR": str(tmp_path / "var"), "MEDIO_PORT": str(port)})
    process = subprocess.Popen(
        [sys.executable, "-m", "medio.cli", "dev"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process, port
    finally:
        _stop_tree(process)


def _stop_tree(process: subprocess.Popen[bytes]) -> None:
    """After a failed assertion too: nothing ``medio dev`` started may outlive the test."""
    if process.poll() is not None:
        return
    descendants = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    _gone, alive = psutil.wait_procs(descendants, timeout=5)
    for leftover in alive:
        leftover.kill()


def _wait_for_health(port: int) -> httpx.Response:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_medio_dev_serves_health_and_stops_cleanly(
    medio_dev: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = medio_dev
    started = time.monotonic()
    response = _wait_for_health(port)
    assert response.status_code == 200
    assert time.monotonic() - started < START_TIMEOUT_SECONDS
    assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200

    descendants = psutil.Process(process.pid).children(recursive=True)
    assert descendants, "medio dev runs its API, workers and Redis as child processes"
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output.decode(errors="replace")
    assert b"get a token with: medio token create" in output
    _gone, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, f"orphaned processes: {alive}"


@pytest.mark.skipif(not TOUR_TOOLS, reason="the README's tour needs bash, curl and jq")
def test_the_readme_tour_runs_as_pasted(
    medio_dev: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    _process, port = medio_dev
    wait_until_serving(port)  # not timed here: the tour is the point, not the start-up time
    workdir = tmp_path / "reader"
    workdir.mkdir()
    check_tour_output(run_tour(port, tmp_path / "var", workdir), workdir)
