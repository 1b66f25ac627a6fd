"""Ingest: ``POST /api/progress`` on Medio vs a bare Litestar endpoint vs the Express peer.

All three run side by side in one command with the same Redis, 2 server processes each, and
are driven by wrk at 64 connections with many users' tokens; rounds alternate between the
servers so a noisy neighbour hurts them alike, and medians are reported.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jwt

from bench import wrk
from bench.services import (
    ROOT,
    bare_command,
    medio_command,
    migrate,
    postgres_database,
    process,
    redis_server,
)
from domain.policy import WEEKDAYS
from medio.embedded import free_port

PEER_DIR = ROOT.parent / "shared" / "peers" / "express-progress"
SECRET = "b" * 64
MASTER_KEY = base64.urlsafe_b64encode(b"m" * 32).decode()  # wraps the families' data keys


def tokens_for(users: list[str], role: str | None = None) -> list[str]:
    """An hour's HS256 token per user; parents unless ``role`` names another role."""
    exp = int(time.time()) + 3600
    claims = {"role": role} if role else {}
    return [jwt.encode({"sub": u, "exp": exp, **claims}, SECRET, algorithm="HS256") for u in users]


@contextlib.contextmanager
def express_peer(redis_url: str, workers: int) -> Iterator[int | None]:
    """The peer from ../shared, installed into a temporary copy; None without Node."""
    if not (shutil.which("node") and shutil.which("npm") and PEER_DIR.exists()):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="medio-peer-") as tmp:
        for name in ("package.json", "server.js"):
            shutil.copy(PEER_DIR / name, tmp)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"],
            cwd=tmp,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        env = {
            "PORT": str(port),
            "REDIS_URL": redis_url,
            "WORKERS": str(workers),
            "JWT_SECRET": SECRET,
        }
        with process(["node", "server.js"], env=env, port=port, cwd=tmp):
            yield port


def medio_env(redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "MEDIO_ENV": "production",
        "MEDIO_JWT_SECRET": SECRET,
        "MEDIO_MASTER_KEY": MASTER_KEY,
        "MEDIO_REDIS_URL": redis_url,
        "MEDIO_DATABASE_URL": database_url,
        "MEDIO_RATE_LIMIT_ENABLED": "true",
        "MEDIO_LOG_LEVEL": "WARNING",
        # The load generator is one address holding up to 256 connections (bench lag); the
        # per-address cap protects a server facing many clients, not this one.
        "MEDIO_MAX_CONNECTIONS_PER_IP": "100000",
        **extra,
    }


@dataclass(frozen=True)
class Servers:
    """Where a benchmark's Medio and bare endpoint listen, and their stores."""

    redis_url: str
    database_url: str
    medio_port: int
    bare_port: int


@contextlib.contextmanager
def medio_and_bare(
    workers: int,
    prepare: Callable[[str, str], None] | None = None,
    bare_env: Callable[[int], dict[str, str]] | None = None,
    **settings: str,
) -> Iterator[Servers]:
    """A private Redis and database, a migrated Medio API and the bare endpoint beside it, each
    with ``workers`` processes. ``prepare(redis_url, database_url)`` runs before the servers
    start (data a benchmark reads); ``bare_env(medio_port)``, once Medio answers, gives the
    bare endpoint's environment; ``settings`` are extra ``MEDIO_*`` variables for Medio."""
    with redis_server() as redis_url, postgres_database() as database_url:
        env = medio_env(redis_url, database_url, **settings)
        migrate(env)
        if prepare is not None:
            prepare(redis_url, database_url)
        medio_port, bare_port = free_port(), free_port()
        medio_api = medio_command("api", "--port", str(medio_port), "--workers", str(workers))
        bare = bare_command(bare_port, workers)
        with process(medio_api, env=env, port=medio_port):
            extra = bare_env(medio_port) if bare_env is not None else {}
            with process(bare, env={**env, **extra}, port=bare_port):
                yield Servers(redis_url, database_url, medio_port, bare_port)


def measure(
    targets: dict[str, int],
    script: Path | dict[str, Path],
    rounds: int,
    seconds: int,
    warmup: int = 3,
) -> dict[str, dict[str, Any]]:
    """Alternate wrk runs across ``targets`` (name -> port); medians per target. ``script``
    is one for all, or one per target (when they hold different ids, such as sessions)."""
    scripts = script if isinstance(script, dict) else dict.fromkeys(targets, script)
    for name, port in targets.items():
        wrk.run(port, scripts[name], warmup)
    runs: dict[str, list[wrk.WrkResult]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, port in targets.items():
            runs[name].append(wrk.run(port, scripts[name], seconds))
    return {name: summarise(results) for name, results in runs.items()}


def summarise(results: list[wrk.WrkResult]) -> dict[str, Any]:
    return {
        "rps_median": round(statistics.median(r.rps for r in results)),
        "p50_ms_median": round(statistics.median(r.p50_ms for r in results), 2),
        "p99_ms_median": round(statistics.median(r.p99_ms for r in results), 2),
        "non2xx": sum(r.non2xx for r in results),
        "socket_errors": sum(r.socket_errors for r in results),
        "runs": [wrk.as_dict(r) for r in results],
    }


def ratios(result: dict[str, dict[str, Any]], subject: str = "medio") -> dict[str, float]:
    out: dict[str, float] = {}
    for other in ("bare", "express"):
        if other in result and result[other]["rps_median"]:
            out[f"{subject}_vs_{other}"] = round(
                result[subject]["rps_median"] / result[other]["rps_median"], 2
            )
    return out


BENCH_ZONE = "America/Los_Angeles"


def full_policy(now: datetime) -> dict[str, Any]:
    """Every policy field of CONTRACT §13 set, none of which ends a session during the run.

    A limit of 1,440 minutes on every weekday entry, an hour's bedtime per weekday starting
    twelve hours from ``now`` in the child's zone (so every beat finds it as the session's next
    end, within the 24-hour horizon, and warns of nothing), the longest warning and
    ``finish_video``.
    """
    local = now.astimezone(ZoneInfo(BENCH_ZONE))
    start = (local + timedelta(hours=12)).strftime("%H:%M")
    end = (local + timedelta(hours=13)).strftime("%H:%M")
    return {
        "daily_limit_minutes": 1440,
        "timezone": BENCH_ZONE,
        "weekday_limits": dict.fromkeys(WEEKDAYS, 1440),
        "bedtime": {day: {"start": start, "end": end} for day in WEEKDAYS},
        "warning_minutes": 60,
        "limit_action": "finish_video",
    }


def start_sessions(port: int, names: list[str], tokens: list[str]) -> list[str]:
    """One child profile (every policy field set, a bonus granted), rated video and running
    session per user, through the public API."""
    session_ids = []
    policy = full_policy(datetime.now(UTC))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for name, token in zip(names, tokens, strict=True):
            headers = {"Authorization": f"Bearer {token}"}
            profile = client.post(
                "/api/profiles",
                json={"name": f"Kid {name}", "age": 8, **policy},
                headers=headers,
            )
            profile.raise_for_status()
            profile_id = profile.json()["id"]
            bonus = client.post(
                f"/api/profiles/{profile_id}/bonus", json={"minutes": 30}, headers=headers
            )
            bonus.raise_for_status()
            video = client.post(
                "/api/videos",
                json={
                    "title": "Bench video",
                    "url": "https://example.com/v.mp4",
                    "duration": 3600,
                    "min_age": 6,
                },
                headers=headers,
            ).json()
            started = client.post(
                "/api/sessions/start",
                json={"profile_id": profile_id, "video_id": video["id"]},
                headers=headers,
            )
            started.raise_for_status()
            session_ids.append(str(started.json()["session_id"]))
    return session_ids


def run(
    rounds: int = 3,
    seconds: int = 10,
    users: int = 2000,
    workers: int = 2,
    session_users: int = 1000,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The ingest benchmark; returns figures for the report."""
    names = [f"user_{i}" for i in range(users)]
    tokens = tokens_for(names)
    progress_script = wrk.write_script(tokens, names, wrk.PROGRESS_BODY, wrk.PROGRESS_PATH)
    with (
        medio_and_bare(workers) as servers,
        express_peer(servers.redis_url, workers) as express_port,
    ):
        medio_port, bare_port = servers.medio_port, servers.bare_port
        targets = {"medio": medio_port, "bare": bare_port}
        if express_port:
            targets["express"] = express_port
        log(f"ingest: POST /api/progress, {rounds}x{seconds}s per server, 64 connections")
        progress = measure(targets, progress_script, rounds, seconds)
        log(f"ingest: heartbeats on {session_users} running sessions")
        # Viewers of their own: the saves above used up part of their users' telemetry
        # allowance (1,200 per 15 min each), and ~400,000 beats need more than 300 users'.
        viewers = [f"viewer_{i}" for i in range(session_users)]
        viewer_tokens = tokens_for(viewers)
        sessions = start_sessions(medio_port, viewers, viewer_tokens)
        heartbeat_script = wrk.write_script(
            viewer_tokens,
            viewers,
            wrk.HEARTBEAT_BODY,
            wrk.HEARTBEAT_PATH,
            targets=sessions,
        )
        heartbeat = measure(
            {"medio": medio_port, "bare": bare_port}, heartbeat_script, rounds, seconds
        )
    progress_script.unlink()
    heartbeat_script.unlink()
    return {
        "connections": 64,
        "server_processes": workers,
        "progress": progress,
        "heartbeat": heartbeat,
        "ratios": {
            "progress": ratios(progress),
            "heartbeat": ratios(heartbeat),
        },
    }


def print_routes(result: dict[str, Any]) -> None:
    """One line per route and server: medians of req/s, p50, p99, and the non-2xx count."""
    for route in ("progress", "heartbeat"):
        for name, figures in result[route].items():
            print(
                f"{route:9} {name:8} {figures['rps_median']:>7} req/s  "
                f"p50 {figures['p50_ms_median']:>7} ms  p99 {figures['p99_ms_median']:>7} ms  "
                f"non-2xx {figures['non2xx']}"
            )


def wrk_options(name: str, doc: str | None, seconds: int) -> argparse.ArgumentParser:
    """The options of a benchmark that drives wrk: ``--rounds``, ``--seconds``, ``--users``."""
    parser = argparse.ArgumentParser(prog=f"python -m bench {name}", description=doc)
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per server")
    parser.add_argument("--seconds", type=int, default=seconds, help="length of a round")
    parser.add_argument("--users", type=int, default=2000, help="users whose tokens wrk sends")
    return parser


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m bench ingest [--rounds N] [--seconds S] [--users U]``."""
    args = wrk_options("ingest", __doc__, seconds=10).parse_args(argv)
    result = run(rounds=args.rounds, seconds=args.seconds, users=args.users)
    print_routes(result)
    print("ratios:", result["ratios"])
    return result
