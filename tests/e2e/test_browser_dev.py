"""A web player on ``http://localhost:3000`` against a real ``medio dev``, over real HTTP.

Plays the browser's part of CORS (CONTRACT §11) with no setting: the preflight, a save sent
with ``Origin``, the answer's and an error's CORS headers, and a foreign origin that gets none.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import psutil

from tests.e2e.test_medio_dev import _wait_for_health, medio_dev  # noqa: F401 (fixture)

FRONT_END = "http://localhost:3000"


def _token(data_dir: str, sub: str) -> str:
    """``medio token create`` beside the running ``medio dev`` (same data dir, same secret)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIO_")}
    env["MEDIO_DATA_DIR"] = data_dir
    out = subprocess.run(
        [sys.executable, "-m", "medio.cli", "token", "create", "--sub", sub],
        env=env,
        capture_output=True,
        check=True,
    )
    return out.stdout.decode().strip().splitlines()[-1]


def test_web_player_on_another_origin(
    medio_dev: tuple[subprocess.Popen[bytes], int],  # noqa: F811
) -> None:
    process, port = medio_dev
    _wait_for_health(port)
    base = f"http://127.0.0.1:{port}"
    token = _token(_data_dir_of(process), "kid_browser")

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
    assert read.status_code == 200, read.text  # read your own write, at once
    assert read.json()["currentTime"] == 42.5
    assert read.headers["access-control-allow-origin"] == FRONT_END

    error = httpx.post(
        f"{base}/api/progress", json={**body, "clerkId": "someone_else"}, headers=headers
    )
    assert error.status_code == 403
    assert error.headers["access-control-allow-origin"] == FRONT_END
    assert "x-request-id" in error.headers["access-control-expose-headers"].lower()

    foreign = httpx.post(
        f"{base}/api/progress", json=body, headers={**headers, "Origin": "https://evil.example"}
    )
    assert not [k for k in foreign.headers if k.lower().startswith("access-control-")]


def _data_dir_of(process: subprocess.Popen[bytes]) -> str:
    """The ``MEDIO_DATA_DIR`` the fixture gave ``medio dev``."""
    return str(psutil.Process(process.pid).environ()["MEDIO_DATA_DIR"])
