"""Drive an HTTP endpoint with wrk: many users' tokens, 64 connections, percentiles out."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

RESULT_MARK = "WRK_RESULT "

_SCRIPT = """
local tokens = {%(tokens)s}
local users = {%(users)s}
local targets = {%(targets)s}
local counter = 0
request = function()
  counter = counter + 1
  local k = (counter %% #tokens) + 1
  local headers = {["Content-Type"] = "application/json",
                   ["Authorization"] = "Bearer " .. tokens[k]}
  local body = %(body)s
  return wrk.format(%(method)s, %(path)s, headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('%(mark)s{"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,'
    .. '"non2xx":%%d,"socket_errors":%%d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""

PROGRESS_BODY = (
    '\'{"clerkId":"\' .. users[k] .. \'","tmdbId":"\' .. (counter % 500) .. '
    "'\",\"currentTime\":' .. (counter % 7200) .. '}'"
)
PROGRESS_PATH = '"/api/progress"'
HEARTBEAT_BODY = "'{\"position\":' .. (counter % 7200) .. '}'"
HEARTBEAT_PATH = '"/api/sessions/" .. targets[k] .. "/heartbeat"'
NO_BODY = "nil"
PROGRESS_LIST_PATH = '"/api/progress/" .. users[k]'


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int


def _lua_list(items: list[str]) -> str:
    return ",".join(json.dumps(item) for item in items)


def write_script(
    tokens: list[str],
    users: list[str],
    body: str,
    path: str,
    targets: list[str] | None = None,
    method: str = "POST",
) -> Path:
    text = _SCRIPT % {
        "method": json.dumps(method),
        "tokens": _lua_list(tokens),
        "users": _lua_list(users),
        "targets": _lua_list(targets or users),
        "body": body,
        "path": path,
        "mark": RESULT_MARK,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(text)
    return Path(handle.name)


def run(
    port: int, script: Path, seconds: int, connections: int = 64, threads: int = 2
) -> WrkResult:
    """One wrk run against 127.0.0.1:``port``."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is required (Debian package 'wrk'); `make bench` installs it")
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith(RESULT_MARK))
    raw = json.loads(line[len(RESULT_MARK) :])
    return WrkResult(
        requests=raw["requests"],
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        non2xx=raw["non2xx"],
        socket_errors=raw["socket_errors"],
    )


def as_dict(result: WrkResult) -> dict[str, float | int]:
    return asdict(result)
