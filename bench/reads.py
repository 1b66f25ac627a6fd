"""Reads: ``GET /api/progress/:clerkId`` (20 titles) on Medio vs a bare Litestar GET.

The bare endpoint answers the same JSON from memory; Medio reads it from the resume
projection's keys, with read-your-writes checked (users with nothing pending, as most reads
are). Both run with 2 server processes beside one Redis, driven by wrk at 64 connections with
many users' tokens, rounds alternating; medians are reported.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import httpx
import msgspec
import redis

from bench import wrk
from bench.bare_app import SEEDED, seeded_list
from bench.ingest import measure, medio_and_bare, ratios, tokens_for
from domain.progress import RESUME_TTL_MS, epoch_ms, resume_value
from projections.resume import index_key, resume_key, version_key


def seed(redis_url: str, users: list[str]) -> None:
    """Each user's 20 titles, as the resume projection writes them (far from expiring), with
    the list version it notes for the user's last event (``projections.resume.version_key``)."""
    client = redis.Redis.from_url(redis_url)
    entries = seeded_list()
    with client.pipeline(transaction=False) as pipe:
        for user in users:
            for entry in entries:
                at = datetime.fromisoformat(entry["updatedAt"].replace("Z", "+00:00"))
                score = epoch_ms(at)
                key = resume_key(user, entry["tmdbId"])
                pipe.set(key, resume_value(entry["currentTime"], entry["updatedAt"]))
                pipe.pexpireat(key, score + RESUME_TTL_MS)
                pipe.zadd(index_key(user), {entry["tmdbId"]: score})
            pipe.set(version_key(user, 0), f"{score}-0", px=RESUME_TTL_MS)
        pipe.execute()
    client.close()


def run(rounds: int = 3, seconds: int = 10, users: int = 2000, workers: int = 2) -> dict[str, Any]:
    names = [f"reader_{i}" for i in range(users)]
    tokens = tokens_for(names)
    script = wrk.write_script(tokens, names, wrk.NO_BODY, wrk.PROGRESS_LIST_PATH, method="GET")
    prepare = functools.partial(seed, users=names)
    with medio_and_bare(workers, prepare) as (_redis_url, medio_port, bare_port):
        _check_same_answer(medio_port, bare_port, names[0], tokens[0])
        result = measure({"medio": medio_port, "bare": bare_port}, script, rounds, seconds)
    script.unlink()
    return {
        "connections": 64,
        "server_processes": workers,
        "answer_bytes": len(msgspec.json.encode(SEEDED)),
        "progress_list": result,
        "ratios": {"progress_list": ratios(result)},
    }


def _check_same_answer(medio_port: int, bare_port: int, user: str, token: str) -> None:
    """Both servers must answer the same JSON, or the comparison means nothing."""
    headers = {"Authorization": f"Bearer {token}"}
    answers = [
        httpx.get(f"http://127.0.0.1:{port}/api/progress/{user}", headers=headers)
        for port in (medio_port, bare_port)
    ]
    for answer in answers:
        answer.raise_for_status()
    if answers[0].json() != answers[1].json():
        raise RuntimeError(f"Medio and bare answers differ: {answers[0].text[:200]}")


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m bench reads [--rounds N] [--seconds S] [--users U]``."""
    options = {"rounds": 3, "seconds": 10, "users": 2000}
    for flag, value in zip(argv[::2], argv[1::2], strict=False):
        options[flag.lstrip("-")] = int(value)
    result = run(rounds=options["rounds"], seconds=options["seconds"], users=options["users"])
    for name, figures in result["progress_list"].items():
        print(
            f"progress list {name:6} {figures['rps_median']:>7} req/s  "
            f"p50 {figures['p50_ms_median']:>7} ms  p99 {figures['p99_ms_median']:>7} ms  "
            f"non-2xx {figures['non2xx']}"
        )
    print(f"answer {result['answer_bytes']} bytes; ratios:", result["ratios"])
    return result
