"""Reads on Medio vs a bare Litestar GET of the same JSON, at two sizes of event history.

Six reads, each against a bare endpoint answering the same bytes from memory:

* ``progress_list``: ``GET /api/progress/:clerkId`` (20 titles), what every player page lists;
* ``progress_title``: ``GET /api/progress/:clerkId/:tmdbId``, one title's resume point;
* ``series_list``: ``GET /api/progress/series/:clerkId`` (10 series);
* ``profile_stats``: ``GET /api/profiles/:id/stats``, a parent's view of a child's week;
* ``day_ledger``: ``GET /api/profiles/:id/days/:date``, a parent's view of why one day's
  budget stands (its session, the child's request for more time, the bonus granted);
* ``feed_page``: ``GET /api/events?after=N``, a page of 100 archived events (analyst role).

The progress reads come from the resume and series projections' keys, with read-your-writes
checked (users with nothing pending, as most reads are), seeded as the projections write
them, list versions included, so a list read twice by one API process is answered as Medio
answers it in production (``adapters.list_cache``). Stats and feed pages come from Postgres:
``bench.history`` writes families' weeks and the rest of the platform's events through the
real SQL projections. Every read is measured at each archive size of ``--sizes`` (default
10,000 then 1,000,000 events: the history grows 100x between them, the readers' own data does
not), so the change of Medio's median latency is measured in the same run.

Both servers run with 2 processes beside one Redis, driven by wrk at 64 connections over many
users' tokens, rounds alternating; medians. The stats, ledger and feed readers are few (400
families, 400 analysts) and the ``general`` rate limit (100 per 15 min per user) would refuse
most of their requests, so its ceiling is raised for this benchmark: every request is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import redis
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.keyring import keyring_for
from adapters.settings import load_settings
from bench import history, wrk
from bench.bare_app import SEEDED, SEEDED_SERIES, seeded_list, seeded_series
from bench.ingest import MASTER_KEY, Servers, measure, medio_and_bare, ratios, tokens_for
from domain.progress import RESUME_TTL_MS, epoch_ms, resume_value
from domain.series_progress import series_value
from projections import resume, series_resume

TARGET_RATIO = 0.5
TARGET_GROWTH = 0.2  # the median may change by less than this when the history grows
SIZES = (10_000, 1_000_000)
FEED_PAGES = 20
FEED_LIMIT = 100  # the feed's default page


@dataclass(frozen=True)
class Read:
    """A read: the path wrk requests (Lua: ``users[k]`` and ``targets[k]`` are the user and
    target of the token in use), and who reads it."""

    path: str
    audience: str  # "players", "families" or "analysts"


READS: dict[str, Read] = {
    "progress_list": Read(wrk.PROGRESS_LIST_PATH, "players"),
    "progress_title": Read(f'"/api/progress/" .. users[k] .. "/{SEEDED[0]["tmdbId"]}"', "players"),
    "series_list": Read('"/api/progress/series/" .. users[k]', "players"),
    "profile_stats": Read('"/api/profiles/" .. targets[k] .. "/stats"', "families"),
    "day_ledger": Read(
        f'"/api/profiles/" .. targets[k] .. "/days/{history.ledger_date(datetime.now(UTC))}"',
        "families",
    ),
    "feed_page": Read('"/api/events?after=" .. targets[k]', "analysts"),
}


@dataclass(frozen=True)
class Audience:
    """Tokens, with the user and the path target of each."""

    tokens: list[str]
    users: list[str]
    targets: list[str]


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


@contextlib.asynccontextmanager
async def _archive(database_url: str) -> AsyncIterator[history.Archive]:
    """The archive of ``database_url``, sealing with the API's master key."""
    settings = load_settings(env_file=None, database_url=database_url, master_key=MASTER_KEY)
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        yield history.Archive(engine, keyring_for(settings))
    finally:
        await engine.dispose()


async def _seed_families(database_url: str, families: list[str], size: int) -> list[str]:
    """The families' weeks, then others' events up to ``size``; the families' profile ids."""
    async with _archive(database_url) as archive:
        readers = await history.add_readers(archive.engine, families)
        await archive.write(history.readers_history(readers))
        await archive.grow(size)
    return [str(reader.profile_id) for reader in readers]


async def _grow(database_url: str, size: int) -> None:
    async with _archive(database_url) as archive:
        await archive.grow(size)


def _bare_answers(port: int, audiences: dict[str, Audience]) -> dict[str, str]:
    """Medio's answers to the stats, ledger and feed reads, in a file for the bare endpoint."""
    answers: dict[str, dict[str, Any]] = {"stats": {}, "ledger": {}, "feed": {}}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for kind, read in (
            ("stats", "profile_stats"),
            ("ledger", "day_ledger"),
            ("feed", "feed_page"),
        ):
            audience = audiences[READS[read].audience]
            for user, token, target in zip(
                audience.users, audience.tokens, audience.targets, strict=True
            ):
                if target in answers[kind]:
                    continue
                path = script_path(READS[read].path, user, target)
                got = client.get(path, headers={"Authorization": f"Bearer {token}"})
                got.raise_for_status()
                answers[kind][target] = got.json()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(answers, handle)
    return {"MEDIO_BENCH_ANSWERS": handle.name}


def run(
    rounds: int = 3,
    seconds: int = 4,
    users: int = 2000,
    readers: int = 400,
    sizes: tuple[int, ...] = SIZES,
    workers: int = 2,
) -> dict[str, Any]:
    if sizes[0] < max(readers * history.READER_EVENTS, FEED_LIMIT * FEED_PAGES):
        raise SystemExit(f"the first size must hold {readers} families' weeks and the pages")
    players = [f"reader_{i}" for i in range(users)]
    families = [f"family_{i}" for i in range(readers)]
    analysts = [f"analyst_{i}" for i in range(readers)]
    step = (sizes[0] - FEED_LIMIT) // FEED_PAGES  # pages inside the first size: same at all
    pages = [str(n * step) for n in range(FEED_PAGES)]
    audiences = {
        "players": Audience(tokens_for(players), players, players),
        "analysts": Audience(
            tokens_for(analysts, role="analyst"),
            analysts,
            [pages[n % FEED_PAGES] for n in range(readers)],
        ),
    }

    def prepare(redis_url: str, database_url: str) -> None:
        seed(redis_url, players)
        profile_ids = asyncio.run(_seed_families(database_url, families, sizes[0]))
        audiences["families"] = Audience(tokens_for(families), families, profile_ids)

    result: dict[str, Any] = {
        "connections": 64,
        "server_processes": workers,
        "answer_bytes": len(msgspec.json.encode(SEEDED)),
        "series_answer_bytes": len(msgspec.json.encode(SEEDED_SERIES)),
        "sizes": list(sizes),
        "families": readers,
        "by_size": {},
        "ratios": {},
    }
    with medio_and_bare(
        workers,
        prepare,
        lambda port: _bare_answers(port, audiences),
        MEDIO_RATE_LIMIT_GENERAL="1000000/900",
    ) as servers:
        scripts = {
            name: wrk.write_script(
                audiences[read.audience].tokens,
                audiences[read.audience].users,
                wrk.NO_BODY,
                read.path,
                targets=audiences[read.audience].targets,
                method="GET",
            )
            for name, read in READS.items()
        }
        try:
            for size in sizes:
                asyncio.run(_grow(servers.database_url, size))
                result["by_size"][str(size)] = _measure_all(
                    servers, audiences, scripts, rounds, seconds
                )
        finally:
            for script in scripts.values():
                script.unlink()
    first, last = (result["by_size"][str(size)] for size in (sizes[0], sizes[-1]))
    result["ratios"] = {name: ratios(measured) for name, measured in first.items()}
    result["ratios_by_size"] = {
        size: {name: ratios(measured)["medio_vs_bare"] for name, measured in by_read.items()}
        for size, by_read in result["by_size"].items()
    }
    result["growth"] = {
        name: round(
            last[name]["medio"]["p50_ms_median"] / first[name]["medio"]["p50_ms_median"] - 1, 3
        )
        for name in READS
    }
    result["targets"] = {"ratio": TARGET_RATIO, "growth": TARGET_GROWTH}
    return result


def _measure_all(
    servers: Servers,
    audiences: dict[str, Audience],
    scripts: dict[str, Path],
    rounds: int,
    seconds: int,
) -> dict[str, Any]:
    """Every read on both servers at the archive's present size (same answers checked first)."""
    measured = {}
    for name, read in READS.items():
        audience = audiences[read.audience]
        for n in range(3):
            path = script_path(read.path, audience.users[n], audience.targets[n])
            _check_same_answer(servers.medio_port, servers.bare_port, path, audience.tokens[n])
        targets = {"medio": servers.medio_port, "bare": servers.bare_port}
        measured[name] = measure(targets, scripts[name], rounds, seconds, warmup=2)
    return measured


def script_path(lua_path: str, user: str, target: str = "") -> str:
    """The path a wrk Lua expression names for ``user`` and ``target``."""
    names = {"users[k]": user, "targets[k]": target}
    return "".join(
        names.get(part.strip(), part.strip().strip('"')) for part in lua_path.split("..")
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


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(size) for size in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive: {text!r}")
    return sizes


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m bench reads [--rounds N] [--seconds S] [--users U] [--families F]
    [--sizes 10000,1000000]``."""
    parser = argparse.ArgumentParser(prog="python -m bench reads", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per server and read")
    parser.add_argument("--seconds", type=int, default=4, help="length of a round")
    parser.add_argument("--users", type=int, default=2000, help="players whose progress is read")
    parser.add_argument("--families", type=int, default=400, help="parents reading stats")
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=",".join(map(str, SIZES)),
        help="archive sizes in events, comma-separated (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    result = run(
        rounds=args.rounds,
        seconds=args.seconds,
        users=args.users,
        readers=args.families,
        sizes=args.sizes,
    )
    for size, by_read in result["by_size"].items():
        for read, servers in by_read.items():
            for name, figures in servers.items():
                print(
                    f"{int(size):>9,} events {read:15} {name:6} {figures['rps_median']:>7} req/s  "
                    f"p50 {figures['p50_ms_median']:>7} ms  p99 {figures['p99_ms_median']:>7} ms  "
                    f"non-2xx {figures['non2xx']}"
                )
    print("Medio / bare by size:", result["ratios_by_size"])
    print("change of Medio's median latency, first to last size:", result["growth"])
    return result
