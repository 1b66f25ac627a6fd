"""Reads: the player's progress reads on Medio vs a bare Litestar GET of the same JSON.

Three reads, each against a bare endpoint answering the same bytes from memory:

* ``progress_list``: ``GET /api/progress/:clerkId`` (20 titles), what every player page lists;
* ``progress_title``: ``GET /api/progress/:clerkId/:tmdbId``, one title's resume point;
* ``series_list``: ``GET /api/progress/series/:clerkId`` (10 series).

Medio reads them from the resume and series projections' keys, with read-your-writes checked
(users with nothing pending, as most reads are). The data is seeded as the projections write it,
list versions included, so a list read twice by one API process is answered as Medio answers
it in production (``adapters.list_cache``). Both servers run with 2 processes beside one
Redis, driven by wrk at 64 connections over many users' tokens, rounds alternating; medians.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import httpx
import msgspec
import redis

from bench import wrk
from bench.bare_app import SEEDED, SEEDED_SERIES, seeded_list, seeded_series
from bench.ingest import measure, medio_and_bare, ratios, tokens_for
from domain.progress import RESUME_TTL_MS, epoch_ms, resume_value
from domain.series_progress import series_value
from projections import resume, series_resume

# name -> the path wrk requests (Lua, ``users[k]`` is the user of the token in use)
READS: dict[str, str] = {
    "progress_list": wrk.PROGRESS_LIST_PATH,
    "progress_title": f'"/api/progress/" .. users[k] .. "/{SEEDED[0]["tmdbId"]}"',
    "series_list": '"/api/progress/series/" .. users[k]',
}


def _ms(updated_at: str) -> int:
    return epoch_ms(datetime.fromisoformat(updated_at.replace("Z", "+00:00")))


def seed(redis_url: str, users: list[str]) -> None:
    """Each user's 20 titles and 10 series as the projections write them (far from expiring),
    with the list versions they note for the user's last event."""
    client = redis.Redis.from_url(redis_url)
    with client.pipeline(transaction=False) as pipe:
        for user in users:
            for entry in seeded_list():
                score = _ms(entry["updatedAt"])
                key = resume.resume_key(user, entry["tmdbId"])
                pipe.set(key, resume_value(entry["currentTime"], entry["updatedAt"]))
                pipe.pexpireat(key, score + RESUME_TTL_MS)
                pipe.zadd(resume.index_key(user), {entry["tmdbId"]: score})
            for item in seeded_series():
                score = _ms(item["updatedAt"])
                series_id, tmdb_id = item["seriesId"], item["tmdbId"]
                value = series_value(series_id, tmdb_id, item["currentTime"], item["updatedAt"])
                pipe.set(series_resume.series_key(user, series_id, tmdb_id), value)
                pipe.set(series_resume.current_key(user, series_id), tmdb_id)
                pipe.zadd(series_resume.index_key(user), {series_id: score})
            pipe.set(resume.version_key(user, 0), f"{score}-0", px=RESUME_TTL_MS)
            pipe.set(series_resume.version_key(user, 0), f"{score}-1", px=RESUME_TTL_MS)
        pipe.execute()
    client.close()


def run(rounds: int = 3, seconds: int = 10, users: int = 2000, workers: int = 2) -> dict[str, Any]:
    names = [f"reader_{i}" for i in range(users)]
    tokens = tokens_for(names)
    prepare = functools.partial(seed, users=names)
    result: dict[str, Any] = {
        "connections": 64,
        "server_processes": workers,
        "answer_bytes": len(msgspec.json.encode(SEEDED)),
        "series_answer_bytes": len(msgspec.json.encode(SEEDED_SERIES)),
        "ratios": {},
    }
    with medio_and_bare(workers, prepare) as (_redis_url, medio_port, bare_port):
        for path in READS.values():  # before the load spends the first user's rate limit
            _check_same_answer(medio_port, bare_port, script_path(path, names[0]), tokens[0])
        for name, path in READS.items():
            script = wrk.write_script(tokens, names, wrk.NO_BODY, path, method="GET")
            measured = measure({"medio": medio_port, "bare": bare_port}, script, rounds, seconds)
            script.unlink()
            result[name] = measured
            result["ratios"][name] = ratios(measured)
    return result


def script_path(lua_path: str, user: str) -> str:
    """The path a wrk Lua expression names for ``user``."""
    return "".join(
        user if part.strip() == "users[k]" else part.strip().strip('"')
        for part in lua_path.split("..")
    )


def _check_same_answer(medio_port: int, bare_port: int, path: str, token: str) -> None:
    """Both servers must answer the same JSON, or the comparison means nothing."""
    headers = {"Authorization": f"Bearer {token}"}
    answers = [
        httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers)
        for port in (medio_port, bare_port)
    ]
    for answer in answers:
        answer.raise_for_status()
    if answers[0].json() != answers[1].json():
        raise RuntimeError(f"Medio and bare answers differ on {path}: {answers[0].text[:200]}")


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m bench reads [--rounds N] [--seconds S] [--users U]``."""
    options = {"rounds": 3, "seconds": 10, "users": 2000}
    for flag, value in zip(argv[::2], argv[1::2], strict=False):
        options[flag.lstrip("-")] = int(value)
    result = run(rounds=options["rounds"], seconds=options["seconds"], users=options["users"])
    for read in READS:
        for name, figures in result[read].items():
            print(
                f"{read:15} {name:6} {figures['rps_median']:>7} req/s  "
                f"p50 {figures['p50_ms_median']:>7} ms  p99 {figures['p99_ms_median']:>7} ms  "
                f"non-2xx {figures['non2xx']}"
            )
    print("ratios:", result["ratios"])
    return result
