"""The baseline: a bare Litestar endpoint, served with Medio's exact server settings.

Answers that depend on seeded data Medio computes (a profile's stats, a page of the event
feed) are read at start-up from the JSON file ``MEDIO_BENCH_ANSWERS`` names, written by the
benchmark from Medio's own answers, and served from memory.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from litestar import Litestar, get, post
from litestar.exceptions import NotFoundException

from medio.server import serve

# What ``GET /api/progress/:clerkId`` answers for each user the reads benchmark seeds.
TITLES = 20
SEEDED_AT = time.strftime("%Y-%m-%dT00:00:00.000Z", time.gmtime())  # today: far from expiring


def seeded_list() -> list[dict[str, Any]]:
    """20 titles, newest first, as Medio lists them (the reads benchmark stores the same)."""
    return [
        {"tmdbId": str(100000 + n), "currentTime": 1000 + n * 37.5, "updatedAt": _at(n)}
        for n in range(TITLES)
    ]


def _at(n: int) -> str:
    return SEEDED_AT[:-4] + f"{999 - n:03d}Z"


SEEDED = seeded_list()
SERIES = 10


def seeded_series() -> list[dict[str, Any]]:
    """10 series, newest first, as Medio lists a seeded user's series."""
    return [
        {
            "seriesId": str(200000 + n),
            "tmdbId": str(300000 + n),
            "currentTime": 500 + n * 12.5,
            "updatedAt": _at(n),
        }
        for n in range(SERIES)
    ]


SEEDED_SERIES = seeded_series()
SEEDED_TITLE = {"currentTime": SEEDED[0]["currentTime"], "updatedAt": SEEDED[0]["updatedAt"]}


@post("/api/progress", status_code=204)
async def save_progress() -> None:
    """Accept and drop the request: the cost of the framework and server alone."""


@post("/api/sessions/{session_id:int}/heartbeat", status_code=200)
async def heartbeat(session_id: int) -> dict[str, object]:
    return {"status": "active", "session_id": session_id}


@get("/api/progress/{clerk_id:str}")
async def list_progress(clerk_id: str) -> list[dict[str, Any]]:
    """The same JSON Medio answers for a seeded user, with no store behind it."""
    return SEEDED


@get("/api/progress/{clerk_id:str}/{tmdb_id:str}")
async def read_progress(clerk_id: str, tmdb_id: str) -> dict[str, Any]:
    """One seeded title's position."""
    return SEEDED_TITLE


@get("/api/progress/series/{clerk_id:str}")
async def list_series(clerk_id: str) -> list[dict[str, Any]]:
    """A seeded user's series."""
    return SEEDED_SERIES


def _answers() -> dict[str, dict[str, Any]]:
    """``{"stats" | "ledger": {profile id: answer}, "feed": {after: answer}}`` from
    MEDIO_BENCH_ANSWERS."""
    path = os.environ.get("MEDIO_BENCH_ANSWERS")
    loaded: dict[str, dict[str, Any]] = json.loads(Path(path).read_text()) if path else {}
    return {kind: loaded.get(kind, {}) for kind in ("stats", "ledger", "feed")}


ANSWERS = _answers()


def _answer(kind: str, key: str) -> Any:
    found = ANSWERS[kind].get(key)
    if found is None:
        raise NotFoundException()
    return found


@get("/api/profiles/{profile_id:str}/stats")
async def profile_stats(profile_id: str) -> Any:
    """The stats Medio answered for this profile."""
    return _answer("stats", profile_id)


@get("/api/profiles/{profile_id:str}/days/{day:str}")
async def day_ledger(profile_id: str, day: str) -> Any:
    """The day's ledger Medio answered for this profile (one day is read)."""
    return _answer("ledger", profile_id)


@get("/api/events")
async def feed_page(after: str = "0") -> Any:
    """The feed page Medio answered after this position."""
    return _answer("feed", after)


def create() -> Litestar:
    return Litestar(
        [
            save_progress,
            heartbeat,
            list_progress,
            read_progress,
            list_series,
            profile_stats,
            day_ledger,
            feed_page,
        ],
        logging_config=None,
        openapi_config=None,
    )


if __name__ == "__main__":
    serve("bench.bare_app:create", "127.0.0.1", int(sys.argv[1]), int(sys.argv[2]))
