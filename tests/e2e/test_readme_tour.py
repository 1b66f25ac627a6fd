"""The README's quick tour (its ``<!-- tour -->`` bash blocks) works when pasted.

One test reads the blocks only: every JSON body a command sends parses and is sent as JSON.
The other pastes them, in order, into bash against a fresh ``medio dev`` (as a reader would,
from a second shell), with ``curl`` made to fail on any error status.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_medio_dev import _stop_tree, _wait_for_health

from medio.embedded import free_port

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
    for route in ("/ready", "/api/progress", "/api/videos/upload", "/thumbnail", "/heartbeat"):
        assert route in tour, route
    assert "/api/events?" in tour


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


@pytest.fixture
def medio_dev_port(tmp_path: Path) -> Iterator[int]:
    """``medio dev`` on embedded defaults under ``tmp_path/var``, as ``make dev`` runs it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIO_")}
    env.update({"MEDIO_DATA_DIR": str(tmp_path / "var"), "MEDIO_PORT": str(port)})
    process = subprocess.Popen(
        [sys.executable, "-m", "medio.cli", "dev"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_health(port)
        yield port
    finally:
        _stop_tree(process)


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "curl", "jq")), reason="needs bash, curl, jq"
)
def test_the_tour_runs_as_pasted_against_medio_dev(medio_dev_port: int, tmp_path: Path) -> None:
    workdir = tmp_path / "reader"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(Path(sys.prefix))  # the README's .venv/bin/medio
    script = "\n".join(
        [
            "set -euo pipefail",
            'curl() { command curl --fail-with-body -sS "$@"; echo; }',
            *(
                b.replace(DOCUMENTED_BASE, f"http://127.0.0.1:{medio_dev_port}")
                for b in tour_blocks()
            ),
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIO_")}
    env["MEDIO_DATA_DIR"] = str(tmp_path / "var")  # where medio dev keeps the signing secret
    done = subprocess.run(
        ["bash", "-c", script], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (workdir / "part.mp4").read_bytes() == (workdir / "clip.mp4").read_bytes()
    assert (workdir / "thumbnail.png").read_bytes() == (workdir / "thumb.png").read_bytes()
    assert '"status":"active"' in done.stdout  # the heartbeat
    assert '"end_reason":"ended"' in done.stdout  # the session read back
