"""The README's quick tour (its ``<!-- tour -->`` bash blocks) works when pasted.

These tests read the blocks only: every JSON body a command sends parses and is sent as JSON.
``run_tour`` pastes them, in order, into bash against a fresh ``medio dev`` (as a reader would,
from a second shell), with ``curl`` made to fail on any error status; that test lives beside
the other ``medio dev`` one in ``test_medio_dev.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.processes import wait_until

README = Path(__file__).resolve().parents[2] / "README.md"
TOUR_BLOCK = re.compile(r"<!-- tour -->\n```bash\n(.*?)```", re.S)
DOCUMENTED_BASE = "http://127.0.0.1:8000"
BODY = re.compile(r"""-d (?:'(?P<single>[^']*)'|"(?P<double>(?:[^"\\]|\\.)*)")""")


def tour_blocks() -> list[str]:
    return TOUR_BLOCK.findall(README.read_text(encoding="utf-8"))


def commands(block: str) -> list[str]:
    """The block's commands, with ``\\``-continued lines joined."""
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_readme_has_a_tour_of_every_part() -> None:
    tour = "\n".join(tour_blocks())
    routes = ("/ready", "/api/progress", "/api/videos/upload", "/thumbnail", "/heartbeat", "/bonus")
    for route in (*routes, "/lock", "/days/today"):
        assert route in tour, route
    assert "/api/events?" in tour
    assert "-X OPTIONS" in tour  # a browser's preflight


def test_every_json_body_of_the_tour_parses_and_is_sent_as_json() -> None:
    sent = 0
    for block in tour_blocks():
        for command in commands(block):
            for match in BODY.finditer(command):
                if match["single"] is not None:
                    body = match["single"]
                else:  # a double-quoted body names shell variables (ids captured before)
                    body = re.sub(r"\$[A-Z_]+", "1", match["double"].replace('\\"', '"'))
                json.loads(body)
                assert "Content-Type: application/json" in command, command
                sent += 1
    assert sent >= 5


def run_tour(port: int, data_dir: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Paste the tour into bash in ``workdir`` against ``medio dev`` on ``port``.

    ``tests/e2e/test_medio_dev.py`` calls this with its running ``medio dev`` (one file, so the
    two never start a server at the same time on a busy machine).
    """
    (workdir / ".venv").symlink_to(Path(sys.prefix))  # the README's .venv/bin/medio
    script = "\n".join(
        [
            "set -euo pipefail",
            'curl() { command curl --fail-with-body -sS "$@"; echo; }',
            *(b.replace(DOCUMENTED_BASE, f"http://127.0.0.1:{port}") for b in tour_blocks()),
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIO_")}
    env["MEDIO_DATA_DIR"] = str(data_dir)  # where medio dev keeps the signing secret
    return subprocess.run(
        ["bash", "-c", script], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )


def check_tour_output(done: subprocess.CompletedProcess[str], workdir: Path) -> None:
    """Every command succeeded, and the files and answers are the ones the tour describes."""
    assert done.returncode == 0, done.stdout + done.stderr
    assert (workdir / "part.mp4").read_bytes() == (workdir / "clip.mp4").read_bytes()
    assert (workdir / "thumbnail.png").read_bytes() == (workdir / "thumb.png").read_bytes()
    assert '"status":"active"' in done.stdout  # the heartbeat
    assert '"end_reason":"ended"' in done.stdout  # the session read back
    assert '"bonus_minutes":15,"limit_minutes":' in done.stdout  # the bonus (45 or 90 today)
    assert '"type":"bonus","minutes":15' in done.stdout  # the day's ledger
    assert '"type":"unlocked"' in done.stdout


def wait_until_serving(port: int, timeout: float = 120) -> None:
    """``medio dev`` answers ``/ready`` (slowly when other tests share the machine's cores)."""
    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200,
        f"medio dev ready on port {port}",
        timeout,
    )


TOUR_TOOLS = all(shutil.which(tool) for tool in ("bash", "curl", "jq"))
