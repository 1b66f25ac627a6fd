"""``medio api`` and ``medio worker`` on a 3-master Redis Cluster (``MEDIO_REDIS_CLUSTER=true``).

The processes run on a private cluster started for the test, a database of their own, and the
job queues on this run's single Redis (``MEDIO_QUEUE_URL``: RQ does not run on a cluster). With 4
stream shards the shards' keys sit on all three masters.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import httpx
import pytest
from redis.cluster import RedisCluster

from adapters.settings import load_settings
from medio.embedded import free_port
from medio.migrate import upgrade
from tests import cluster, scratch
from tests.processes import medio_env_on_cluster, start_medio, stop_all, wait_until

pytestmark = pytest.mark.cluster

SHARDS = 4


@pytest.fixture(scope="module")
def on_cluster(test_env: dict[str, str]) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """A ``medio api`` and a ``medio worker`` on a fresh cluster; a client of the API."""
    with cluster.running_cluster() as running, scratch.throwaway_database("cluster") as database:
        env = medio_env_on_cluster(running, database, test_env, SHARDS)
        upgrade(load_settings(env_file=None, database_url=database))
        port = free_port()
        processes = [
            start_medio(env, "api", "--port", str(port), "--workers", "1"),
            start_medio(env, "worker"),
        ]
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                wait_until(lambda: client.get("/health").status_code == 200, "medio api up", 40)
                yield client, env
        finally:
            stop_all(processes, 20)


def test_api_and_worker_are_healthy_and_ready_on_a_cluster(
    on_cluster: tuple[httpx.Client, dict[str, str]],
) -> None:
    client, _env = on_cluster
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"redis": "ok", "database": "ok"}


def test_saves_on_every_shard_are_projected_by_the_worker(
    on_cluster: tuple[httpx.Client, dict[str, str]],
    make_token: Callable[..., str],
) -> None:
    """Users whose shards lie on all three masters: each save is read back once projected."""
    client, env = on_cluster
    users = [f"user_{secrets.token_hex(6)}" for _ in range(12)]
    for number, user in enumerate(users):
        headers = {"Authorization": f"Bearer {make_token(user)}"}
        body = {"clerkId": user, "tmdbId": "42", "currentTime": 10 + number}
        saved = client.post("/api/progress", json=body, headers=headers)
        assert saved.status_code == 204, saved.text
    for number, user in enumerate(users):
        headers = {"Authorization": f"Bearer {make_token(user)}"}

        def projected(user: str = user, headers: dict[str, str] = headers) -> bool:
            found = client.get(f"/api/progress/{user}/42", headers=headers)
            return found.status_code == 200 and found.json()["currentTime"] == 10 + users.index(
                user
            )

        wait_until(projected, f"{user}'s save ({number}) projected", 40)
    # The streams that took them are on more than one master.
    nodes = RedisCluster.from_url(env["MEDIO_REDIS_URL"])
    try:
        owners = {
            nodes.get_node_from_key(f"medio:events:{{{shard}}}").name for shard in range(SHARDS)
        }
        lengths = [nodes.xlen(f"medio:events:{{{shard}}}") for shard in range(SHARDS)]
    finally:
        nodes.close()
    assert len(owners) == 3
    assert sum(lengths) >= len(users) and sum(1 for n in lengths if n) >= 2
