"""A kill test on a 3-master Redis Cluster: under a load of saves, one worker is SIGKILLed and one
master is restarted (AOF on). Every acknowledged save is archived, none twice, and ``medio
replay --verify`` finds no difference."""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from adapters.settings import load_settings
from medio.embedded import free_port
from medio.migrate import upgrade
from tests import cluster, scratch
from tests.processes import medio_env_on_cluster, start_medio, stop_all, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

LOAD_SECONDS = 9.0
THREADS = 4


def test_a_killed_worker_and_a_restarted_master_lose_and_repeat_nothing(
    test_env: dict[str, str], make_token: Callable[..., str]
) -> None:
    with cluster.running_cluster() as running, scratch.throwaway_database("kill") as database:
        env = medio_env_on_cluster(running, database, test_env, shards=4)
        upgrade(load_settings(env_file=None, database_url=database))
        port = free_port()
        api = start_medio(env, "api", "--port", str(port), "--workers", "1")
        workers = [start_medio(env, "worker"), start_medio(env, "worker")]
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                wait_until(lambda: client.get("/health").status_code == 200, "medio api up", 60)
                saves, failed = _load_with_faults(port, make_token, running, workers[0])
                assert len(saves) > 200 and set(failed) <= {503}, (len(saves), Counter(failed))

                def drained() -> bool:
                    ready = client.get("/ready").json()
                    return ready.get("status") == "ready" and all(
                        entry["behind"] == 0
                        for shards in ready["projections"].values()
                        for entry in shards.values()
                    )

                wait_until(drained, "every projection caught up", 60)
                # Every acknowledged save is there to read (projected from its event).
                for user, title, position in saves:
                    headers = {"Authorization": f"Bearer {make_token(user)}"}
                    read = client.get(f"/api/progress/{user}/{title}", headers=headers)
                    assert read.json()["currentTime"] == position, (user, title)
            count, distinct = _archived_saves(database)
            # No entry archived twice; a save refused with 503 may have been appended before
            # its reply was lost (a client retries it with its Idempotency-Key).
            assert count == distinct
            assert len(saves) <= count <= len(saves) + len(failed)
            verify = subprocess.run(
                [sys.executable, "-m", "medio.cli", "replay", "--verify"],
                env=env,
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert verify.returncode == 0, verify.stdout + verify.stderr
            assert "no differences" in verify.stdout
        finally:
            stop_all([api, *workers], 20)


def _load_with_faults(
    port: int,
    make_token: Callable[..., str],
    running: cluster.Cluster,
    victim: subprocess.Popen[bytes],
) -> tuple[list[tuple[str, str, int]], list[int]]:
    """Saves from ``THREADS`` clients; a worker killed and a master restarted meanwhile.
    The saves acknowledged (204: user, title, position) and the status of each refused one."""
    users = [f"user_{secrets.token_hex(5)}" for _ in range(24)]
    tokens = {user: make_token(user) for user in users}
    acked: list[tuple[str, str, int]] = []
    failed: list[int] = []
    stop = time.monotonic() + LOAD_SECONDS

    def run(offset: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
            number = 0
            while time.monotonic() < stop:
                number += 1
                user = users[(offset + number) % len(users)]
                body = {"clerkId": user, "tmdbId": f"{offset}-{number}", "currentTime": number}
                answer = client.post(
                    "/api/progress", json=body, headers={"Authorization": f"Bearer {tokens[user]}"}
                )
                if answer.status_code == 204:
                    acked.append((user, body["tmdbId"], number))
                else:
                    failed.append(answer.status_code)

    threads = [threading.Thread(target=run, args=(offset,)) for offset in range(THREADS)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    victim.send_signal(signal.SIGKILL)
    time.sleep(1.5)
    master = running.ports[1]
    running.stop_node(master)  # SIGTERM: the node writes its AOF and stops
    time.sleep(1)
    running.start_node(master)  # the same dir: it loads its AOF and rejoins
    for thread in threads:
        thread.join()
    running.wait_ok()
    return acked, failed


def _archived_saves(database: str) -> tuple[int, int]:
    """Archived ``progress.saved`` events, and how many distinct stream entries they are."""

    async def count() -> tuple[int, int]:
        conn = await asyncpg.connect(database)
        try:
            row = await conn.fetchrow(
                "SELECT count(*), count(DISTINCT (shard, stream_id)) FROM events"
                " WHERE type = 'progress.saved'"
            )
        finally:
            await conn.close()
        assert row is not None
        return int(row[0]), int(row[1])

    return asyncio.run(count())
