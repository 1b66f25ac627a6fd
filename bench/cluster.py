"""Ingest on a 3-master Redis Cluster against the same run on one Redis.

Two Medio APIs side by side, 2 processes each, each with its own Postgres database: one on a
single Redis, one with ``MEDIO_REDIS_CLUSTER=true`` on a private cluster of 3 masters on this
machine. wrk drives ``POST /api/progress`` and then heartbeats at 64 connections over many
users' tokens, rounds alternating between the two, medians. Every process shares the same
cores, so the cluster's gain in capacity does not show here; what is measured is what the
cluster client and the hash-tagged key layout cost a request (DESIGN.md: ≥ 80 %). As the
throughput of shared cores also depends on the neighbours, one more run per route and server
measures the CPU each request cost the API's processes and Redis (all masters of the cluster).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import wrk
from bench.ingest import (
    measure,
    medio_env,
    print_routes,
    start_sessions,
    tokens_for,
    wrk_options,
)
from bench.observe import cpu_seconds, redis_cpu_seconds
from bench.services import (
    medio_command,
    migrate,
    postgres_database,
    process,
    redis_cluster,
    redis_server,
)
from medio.embedded import free_port

TARGET = 0.8


@contextlib.contextmanager
def _medio(redis_url: str, workers: int, **settings: str) -> Iterator[tuple[int, int]]:
    """A migrated Medio API on ``redis_url`` and a throwaway database; yields its port and
    process id."""
    with postgres_database() as database_url:
        env = medio_env(redis_url, database_url, **settings)
        migrate(env)
        port = free_port()
        command = medio_command("api", "--port", str(port), "--workers", str(workers))
        with process(command, env=env, port=port) as api:
            yield port, api.pid


def cpu_per_request(
    port: int, api_pid: int, redis_url: str, script: Path, seconds: int
) -> dict[str, float]:
    """One wrk run of ``seconds``: µs of CPU per request of the API's processes and of Redis."""
    api, store = cpu_seconds([api_pid]), redis_cpu_seconds(redis_url)
    requests = wrk.run(port, script, seconds).requests
    return {
        "api_us": round((cpu_seconds([api_pid]) - api) / requests * 1e6, 1),
        "redis_us": round((redis_cpu_seconds(redis_url) - store) / requests * 1e6, 1),
    }


def run(rounds: int = 3, seconds: int = 6, users: int = 2000, workers: int = 2) -> dict[str, Any]:
    names = [f"user_{i}" for i in range(users)]
    tokens = tokens_for(names)
    progress_script = wrk.write_script(tokens, names, wrk.PROGRESS_BODY, wrk.PROGRESS_PATH)
    viewers = [f"viewer_{i}" for i in range(users // 2)]
    viewer_tokens = tokens_for(viewers)
    with (
        redis_server() as single_url,
        redis_cluster(3) as cluster_url,
        _medio(single_url, workers) as (single, single_pid),
        redis_server() as queue_url,  # RQ cannot run on a cluster (docs/operations.md)
        _medio(cluster_url, workers, MEDIO_REDIS_CLUSTER="true", MEDIO_QUEUE_URL=queue_url) as (
            cluster,
            cluster_pid,
        ),
    ):
        ports = {"single": single, "cluster": cluster}
        servers = {"single": (single, single_pid, single_url)}
        servers["cluster"] = (cluster, cluster_pid, cluster_url)
        progress = measure(ports, progress_script, rounds, seconds)
        cpu = {
            "progress": {
                name: cpu_per_request(*server, progress_script, seconds)
                for name, server in servers.items()
            }
        }
        scripts = {
            name: wrk.write_script(
                viewer_tokens,
                viewers,
                wrk.HEARTBEAT_BODY,
                wrk.HEARTBEAT_PATH,
                targets=start_sessions(port, viewers, viewer_tokens),
            )
            for name, port in ports.items()
        }
        heartbeat = measure(ports, scripts, rounds, seconds)  # session ids differ: a script each
        cpu["heartbeat"] = {
            name: cpu_per_request(*server, scripts[name], seconds)
            for name, server in servers.items()
        }
        for script in scripts.values():
            script.unlink()
    progress_script.unlink()
    return {
        "masters": 3,
        "connections": 64,
        "server_processes": workers,
        "progress": progress,
        "heartbeat": heartbeat,
        "cpu_per_request": cpu,
        "ratios": {
            route: round(figures["cluster"]["rps_median"] / figures["single"]["rps_median"], 2)
            for route, figures in (("progress", progress), ("heartbeat", heartbeat))
        },
        "targets": {"cluster_vs_single": TARGET},
    }


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m bench cluster [--rounds N] [--seconds S] [--users U]``."""
    args = wrk_options("cluster", __doc__, seconds=6).parse_args(argv)
    result = run(rounds=args.rounds, seconds=args.seconds, users=args.users)
    print_routes(result)
    for route, servers in result["cpu_per_request"].items():
        for name, figures in servers.items():
            print(
                f"{route:9} {name:8} CPU per request: API {figures['api_us']} µs, "
                f"Redis {figures['redis_us']} µs"
            )
    print("cluster / one Redis:", result["ratios"], f"(target >= {TARGET:.0%})")
    return result
