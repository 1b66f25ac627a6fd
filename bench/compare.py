"""Heartbeats on Medio from several source trees side by side, with the CPU each beat costs.

``python -m bench.compare BEFORE,AFTER [--rounds 5] [--seconds 5]``: each tree (a checkout,
e.g. ``git worktree add /tmp/before HEAD~1``) serves its own Medio API (2 processes) on one
private Redis and database, next to the bare endpoint; 1,000 running sessions with every policy
field set (``bench.ingest.start_sessions``) get heartbeats under wrk at 64 connections, rounds
alternating between the servers. Per server it prints the median req/s (and its ratio to the
bare endpoint's), and the median CPU µs per request of the server's processes, of Redis and of
wrk: on shared cores CPU per request moves less with the neighbours than throughput does, so a
change is judged on both.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import sys
from dataclasses import dataclass
from typing import Any

from bench import wrk
from bench.ingest import medio_env, start_sessions, tokens_for
from bench.observe import cpu_seconds, redis_cpu_seconds
from bench.services import (
    bare_command,
    medio_command,
    migrate,
    postgres_database,
    process,
    redis_server,
    stop_cleanly_on_sigterm,
)
from medio.embedded import free_port

SESSIONS = 1000


@dataclass(frozen=True)
class Round:
    rps: float
    server_us: float
    redis_us: float
    wrk_us: float
    non2xx: int


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run(trees: list[str], rounds: int, seconds: int) -> dict[str, list[Round]]:
    with redis_server() as redis_url, postgres_database() as database_url:
        env = medio_env(redis_url, database_url)
        migrate(env)
        with contextlib.ExitStack() as stack:
            servers: dict[str, tuple[int, int]] = {}
            for tree in trees:
                port = free_port()
                api = medio_command("api", "--port", str(port), "--workers", "2")
                started = stack.enter_context(process(api, env=env, port=port, cwd=tree))
                servers[tree] = (port, started.pid)
            bare_port = free_port()
            bare = stack.enter_context(process(bare_command(bare_port, 2), env=env, port=bare_port))
            servers["bare"] = (bare_port, bare.pid)
            viewers = [f"viewer_{i}" for i in range(SESSIONS)]
            tokens = tokens_for(viewers)
            sessions = start_sessions(servers[trees[0]][0], viewers, tokens)
            script = wrk.write_script(
                tokens, viewers, wrk.HEARTBEAT_BODY, wrk.HEARTBEAT_PATH, targets=sessions
            )
            for port, _ in servers.values():
                wrk.run(port, script, 3)  # warm: users' rows, policies, connections
            rounds_of: dict[str, list[Round]] = {name: [] for name in servers}
            for _ in range(rounds):
                for name, (port, pid) in servers.items():
                    before = (cpu_seconds([pid]), redis_cpu_seconds(redis_url), _children_cpu())
                    result = wrk.run(port, script, seconds)
                    after = (cpu_seconds([pid]), redis_cpu_seconds(redis_url), _children_cpu())
                    per = [
                        (b - a) / result.requests * 1e6 for a, b in zip(before, after, strict=True)
                    ]
                    rounds_of[name].append(Round(result.rps, *per, result.non2xx))
            script.unlink()
    return rounds_of


def summary(rounds_of: dict[str, list[Round]]) -> dict[str, dict[str, Any]]:
    bare_rps = statistics.median(r.rps for r in rounds_of["bare"])
    out: dict[str, dict[str, Any]] = {}
    for name, rounds in rounds_of.items():
        rps = statistics.median(r.rps for r in rounds)
        out[name] = {
            "rps": round(rps),
            "vs_bare": round(rps / bare_rps, 3),
            "server_us": round(statistics.median(r.server_us for r in rounds), 1),
            "redis_us": round(statistics.median(r.redis_us for r in rounds), 1),
            "wrk_us": round(statistics.median(r.wrk_us for r in rounds), 1),
            "non2xx": sum(r.non2xx for r in rounds),
            "runs_rps": [round(r.rps) for r in rounds],
        }
    return out


def main(argv: list[str]) -> dict[str, dict[str, Any]]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("trees", help="source trees to compare, comma-separated: BEFORE,AFTER")
    parser.add_argument("--rounds", type=int, default=5, help="wrk rounds per server")
    parser.add_argument("--seconds", type=int, default=5, help="length of a round")
    args = parser.parse_args(argv)
    figures = summary(run(args.trees.split(","), args.rounds, args.seconds))
    for name, f in figures.items():
        print(
            f"{name:24} {f['rps']:>6} req/s ({f['vs_bare']:.3f} of bare)  CPU µs per request: "
            f"server {f['server_us']:>6}  Redis {f['redis_us']:>5}  wrk {f['wrk_us']:>5}  "
            f"non-2xx {f['non2xx']}  rounds {f['runs_rps']}"
        )
    return figures


if __name__ == "__main__":
    stop_cleanly_on_sigterm()
    main(sys.argv[1:])
