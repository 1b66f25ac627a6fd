"""A private Redis Cluster of three masters for a test run: started on free ports in a temporary
directory (AOF on), created with ``redis-cli --cluster create``, torn down after.

A cluster has only database 0, so a run against one never shares it: each run starts its own.
``python -m tests.cluster`` starts one and prints its first node's URL until interrupted.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

MASTERS = 3
START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    """A port free now, and its cluster bus port (port + 10000) too."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class Cluster:
    """A running cluster: its nodes' ports and processes."""

    directory: Path
    ports: list[int]
    appendonly: bool = True  # AOF as production runs it; a benchmark against a bare Redis: off
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """``MEDIO_REDIS_URL`` of the cluster (any node names it)."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start_node(self, port: int) -> None:
        node_dir = self.directory / str(port)
        node_dir.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--dir",
                str(node_dir),
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                if redis.Redis(port=port, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop_node(self, port: int, *, kill: bool = False) -> None:
        process = self.processes.pop(port)
        if kill:
            process.kill()
        else:
            process.terminate()
        process.wait(10)

    def wait_ok(self) -> None:
        """Until every node reports ``cluster_state:ok`` and agrees on all 16384 slots."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            states = []
            for port in self.ports:
                try:
                    info = redis.Redis(port=port, socket_timeout=1).cluster("INFO")
                except redis.ConnectionError:
                    info = {}
                states.append(
                    info.get("cluster_state") == "ok"
                    and str(info.get("cluster_slots_ok")) == "16384"
                )
            if all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster on {self.ports} is not ok: {states}")
            time.sleep(0.1)

    def flush(self) -> None:
        for port in self.ports:
            redis.Redis(port=port).flushall()

    def stop(self) -> None:
        for port in list(self.processes):
            self.stop_node(port, kill=True)


@contextlib.contextmanager
def running_cluster(masters: int = MASTERS, appendonly: bool = True) -> Iterator[Cluster]:
    """A fresh cluster of ``masters`` masters, stopped and deleted on exit."""
    with tempfile.TemporaryDirectory(prefix="medio-cluster-") as directory:
        ports = [free_port() for _ in range(masters)]
        cluster = Cluster(Path(directory), ports, appendonly)
        try:
            for port in cluster.ports:
                cluster.start_node(port)
            subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{port}" for port in cluster.ports),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=60,
            )
            cluster.wait_ok()
            yield cluster
        finally:
            cluster.stop()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the nodes on a plain kill
    with running_cluster() as running:
        print(running.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
