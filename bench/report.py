"""``python -m bench.report``: ``bench/results/latest.json`` as a markdown table, with the machine.

Writes ``bench/results/latest.md`` (the table docs/benchmarks.md quotes) and prints
it. One row per figure that has a target in DESIGN.md "Performance", plus the context needed
to read it (the baselines, the ceiling a target is bounded by). A benchmark missing from
``latest.json`` is left out rather than shown empty.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg

from tests.scratch import ADMIN_URL

RESULTS = Path(__file__).resolve().parent / "results"
Row = tuple[str, str, str, str]  # what, measured, target, verdict


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def _command_version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    return out.strip() or "absent"


async def _postgres_version() -> str:
    try:
        conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return "unreachable"
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return pages * page_size / 2**30


def machine() -> dict[str, str]:
    """What the figures were measured on (read now: run the report on the benchmark machine)."""
    redis = _command_version(["redis-server", "--version"]).split()
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": f"{_memory_gib():.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis": next((p[2:] for p in redis if p.startswith("v=")), "absent"),
        "postgres": asyncio.run(_postgres_version()),
        "uvicorn": metadata.version("uvicorn"),
        "litestar": metadata.version("litestar"),
        "node": _command_version(["node", "--version"]),
    }


# DESIGN.md "Performance": each target a ratio to a baseline measured in the same run.
INGEST_VS_BARE = {"progress": 0.5, "heartbeat": 0.4}
INGEST_VS_EXPRESS = 3.0
INGEST_P99_VS_BARE = 3.0  # Medio's p99 under the bare endpoint's p99 times this


def _ingest(result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    connections = result.get("connections", 64)
    for route, label in (("progress", "`POST /api/progress`"), ("heartbeat", "heartbeat")):
        servers, ratios = result.get(route, {}), result.get("ratios", {}).get(route, {})
        if "medio" not in servers:
            continue
        medio, bare = servers["medio"], servers.get("bare")
        refused = medio.get("non2xx", 0)  # e.g. rate-limited: such a run measures the 429 path
        refusals = f", {_n(refused)} non-2xx" if refused else ""
        if route == "progress" and bare:
            ceiling = round(bare["p99_ms_median"] * INGEST_P99_VS_BARE, 2)
            target, met = (
                f"p99 ≤ bare's x {INGEST_P99_VS_BARE:g} ({ceiling} ms), all 2xx",
                (medio["p99_ms_median"] <= ceiling and not refused),
            )
        else:
            target, met = "all 2xx", not refused
        rows.append(
            (
                f"{label} ingest, {connections} connections: Medio",
                f"{_n(medio['rps_median'])} req/s, p50 {medio['p50_ms_median']} ms, "
                f"p99 {medio['p99_ms_median']} ms{refusals}",
                target,
                _verdict(met),
            )
        )
        for peer, name in (("bare", "bare Litestar endpoint"), ("express", "Express peer")):
            if peer in servers:
                other = servers[peer]
                rows.append(
                    (
                        f"{label}: {name}",
                        f"{_n(other['rps_median'])} req/s, p99 {other['p99_ms_median']} ms",
                        "baseline",
                        "",
                    )
                )
        if route == "progress" and "medio_vs_express" in ratios:
            ratio = ratios["medio_vs_express"]
            rows.append(
                (
                    f"{label}: Medio / Express",
                    f"{ratio} times",
                    f"≥ {INGEST_VS_EXPRESS:g} times",
                    _verdict(ratio >= INGEST_VS_EXPRESS),
                )
            )
        if "medio_vs_bare" in ratios:
            ratio, want = ratios["medio_vs_bare"], INGEST_VS_BARE[route]
            rows.append(
                (f"{label}: Medio / bare", f"{ratio:.0%}", f"≥ {want:.0%}", _verdict(ratio >= want))
            )
    return rows


def _cluster(result: dict[str, Any]) -> list[Row]:
    """Ingest on a 3-master Redis Cluster against the same run on one Redis."""
    rows: list[Row] = []
    target = result.get("targets", {}).get("cluster_vs_single", 0.8)
    for route, label in (("progress", "`POST /api/progress`"), ("heartbeat", "heartbeat")):
        figures = result.get(route)
        if not figures:
            continue
        single, cluster = figures["single"], figures["cluster"]
        ratio = cluster["rps_median"] / single["rps_median"] if single["rps_median"] else 0.0
        refused = cluster.get("non2xx", 0) + single.get("non2xx", 0)
        rows.append(
            (
                f"{label} ingest on a {result.get('masters', 3)}-master Redis Cluster vs one Redis",
                f"{_n(cluster['rps_median'])} vs {_n(single['rps_median'])} req/s = {ratio:.0%} "
                f"(p99 {cluster['p99_ms_median']} vs {single['p99_ms_median']} ms)"
                + (f", {_n(refused)} non-2xx" if refused else ""),
                f"≥ {target:.0%}",
                _verdict(ratio >= target and not refused),
            )
        )
    return rows


def _projector(result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    targets, ratios = result.get("targets", {}), result.get("ratios", {})
    events = _n(result.get("events", 0))
    for key in ("projector", "projector_archive_only", "replay"):
        if key not in result:
            return rows
    projector, archive_only, replay = (
        result[key] for key in ("projector", "projector_archive_only", "replay")
    )

    def rate(figures: dict[str, Any]) -> str:
        uncontended = figures.get("uncontended_events_per_s")
        extra = f" (from CPU time: {_n(uncontended)})" if uncontended else ""
        return f"{_n(figures['events_per_s'])} events/s{extra}"

    share = ratios.get(
        "projector_vs_archive_only", projector["events_per_s"] / archive_only["events_per_s"]
    )
    want_share = targets.get("projector_vs_archive_only", 0.4)
    rows.append(
        (
            f"projector, all projections, 1 process, {events} events, vs the archive-only "
            "projector",
            f"{rate(projector)} vs {_n(archive_only['events_per_s'])} = {share:.0%}",
            f"≥ {want_share:.0%}",
            _verdict(share >= want_share),
        )
    )
    times = ratios.get(
        "replay_vs_projector", round(replay["events_per_s"] / projector["events_per_s"], 2)
    )
    want_times = targets.get("replay_vs_projector", 2.5)
    rows.append(
        (
            f"replay from the archive, {events} events, vs the live projector",
            f"{rate(replay)} = {times} times",
            f"≥ {want_times:g} times",
            _verdict(times >= want_times),
        )
    )
    return rows


def _lag(result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    targets = result.get("targets", {})
    target = targets.get("lag_p99_ms", 250)
    rate = result.get("rate", 0)
    capacity = result.get("capacity")
    if capacity:
        rows.append(
            (
                "end-to-end capacity: `POST /api/progress` saturated by wrk (64 connections), "
                "then archived",
                f"{_n(capacity['saves_per_s'])} saves/s ({_n(capacity['accepted'])} accepted at "
                f"{_n(capacity['api_saves_per_s'])}/s, archived {capacity['catch_up_s']} s after "
                "the load stopped)",
                "context",
                "",
            )
        )
    steady = f"{_n(rate)}/s" + (" (half the capacity)" if capacity else "")
    for phase, how in (
        ("direct", "append → visible, progress events appended (XADD) at"),
        ("api", "2xx → visible, `POST /api/progress` offered at"),
    ):
        if phase not in result:
            continue
        load, lag, projector = (result[phase][k] for k in ("load", "lag", "projector"))
        reached = load["sent_rate"] >= 0.95 * rate
        met = reached and not lag["lost"] and lag["p99_ms"] <= target
        sent = "" if reached else f"; only {_n(load['sent_rate'])}/s accepted"
        rows.append(
            (
                f"lag {how} {steady}",
                f"p50 {lag['p50_ms']} ms, p99 {lag['p99_ms']} ms, max {lag['max_ms']} ms "
                f"({lag['samples']} samples{sent}); projector archived "
                f"{_n(projector.get('events_per_s', 0))} events/s",
                f"p99 ≤ {target} ms",
                _verdict(met),
            )
        )
    cost = result.get("cost")
    if cost and cost.get("ratio") is not None:
        limit = targets.get("cost_ratio", 6)
        parts = result["api"]["cpu"]["us_per_request"]
        rows.append(
            (
                f"CPU of one accepted save end to end at {_n(rate)}/s vs one bare request",
                f"{cost['save_us']} µs (API {parts['api']}, workers {parts['workers']}, Redis "
                f"{parts['redis']}, Postgres {parts['postgres']}) vs {cost['bare_us']} µs = "
                f"{cost['ratio']} times",
                f"≤ {limit:g} times",
                _verdict(cost["ratio"] <= limit),
            )
        )
    return rows


def _media(result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    targets = result.get("targets", {})
    if "upload" in result:
        up, limit = result["upload"], targets.get("upload_growth_mb", 50)
        rows.append(
            (
                f"upload of {result.get('megabytes', 500):g} MB: API memory growth",
                f"{up['rss_peak_growth_mb']} MB over {up['rss_baseline_mb']} MB "
                f"({up['mb_per_s']} MB/s)",
                f"< {limit} MB",
                _verdict(up["rss_peak_growth_mb"] < limit),
            )
        )
    if "stream" in result and "loopback_sendfile_mb_per_s" in result["stream"]:
        st, ratio = result["stream"], targets.get("stream_vs_sendfile", 0.9)
        rows.append(
            (
                "stream of a cached file vs `sendfile` of it to the same client",
                f"{_n(st['stream_mb_per_s'])} vs {_n(st['loopback_sendfile_mb_per_s'])} MB/s = "
                f"{st['ratio_to_sendfile']:.0%}",
                f"≥ {ratio:.0%}",
                _verdict(st["ratio_to_sendfile"] >= ratio),
            )
        )
        rows.append(
            (
                "stream vs `cat file > /dev/null` (one page-cache copy, no socket)",
                f"{_n(st['cat_mb_per_s'])} MB/s: stream is {st['ratio']:.0%} of it",
                "context",
                "",
            )
        )
    return rows


READ_LABELS = {
    "progress_list": "`GET /api/progress/:clerkId` (20 titles)",
    "progress_title": "`GET /api/progress/:clerkId/:tmdbId`",
    "series_list": "`GET /api/progress/series/:clerkId` (10 series)",
    "profile_stats": "`GET /api/profiles/:id/stats`",
    "day_ledger": "`GET /api/profiles/:id/days/:date` (a day's ledger)",
    "feed_page": "`GET /api/events?after=N` (a page of 100)",
}


def _size(events: str | int) -> str:
    count = int(events)
    return f"{count // 1_000_000}M" if count % 1_000_000 == 0 else f"{count // 1000:,}k"


def _reads(result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    by_size: dict[str, dict[str, Any]] = result.get("by_size", {})
    if not by_size:
        return rows
    ratio_target = result.get("targets", {}).get("ratio", 0.5)
    growth_target = result.get("targets", {}).get("growth", 0.2)
    sizes = list(by_size)
    for read, label in READ_LABELS.items():
        at = {size: by_size[size][read] for size in sizes if read in by_size[size]}
        if not at:
            continue
        parts, met = [], True
        for size, servers in at.items():
            medio, bare = servers["medio"], servers["bare"]
            ratio = medio["rps_median"] / bare["rps_median"] if bare["rps_median"] else 0.0
            refused = medio.get("non2xx", 0)
            met = met and ratio >= ratio_target and not refused
            parts.append(
                f"{_size(size)} events: {_n(medio['rps_median'])} vs {_n(bare['rps_median'])} "
                f"req/s = {ratio:.0%}" + (f", {_n(refused)} non-2xx" if refused else "")
            )
        rows.append(
            (
                f"{label}: Medio vs a bare Litestar GET of the same JSON",
                "; ".join(parts),
                f"≥ {ratio_target:.0%}",
                _verdict(met),
            )
        )
        if len(at) > 1:
            first, last = at[sizes[0]]["medio"], at[sizes[-1]]["medio"]
            change = last["p50_ms_median"] / first["p50_ms_median"] - 1
            # The bare GET's history does not grow: its change is the machine's, for context.
            bare_first, bare_last = at[sizes[0]]["bare"], at[sizes[-1]]["bare"]
            bare_change = bare_last["p50_ms_median"] / bare_first["p50_ms_median"] - 1
            rows.append(
                (
                    f"{label}: Medio's median latency as the history grows "
                    f"{_size(sizes[0])} → {_size(sizes[-1])} events",
                    f"{first['p50_ms_median']} → {last['p50_ms_median']} ms ({change:+.0%}); "
                    f"the bare GET in the same rounds: {bare_first['p50_ms_median']} → "
                    f"{bare_last['p50_ms_median']} ms ({bare_change:+.0%})",
                    f"change < {growth_target:.0%}",
                    _verdict(abs(change) < growth_target),
                )
            )
    return rows


SECTIONS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "ingest": _ingest,
    "cluster": _cluster,
    "reads": _reads,
    "projector": _projector,
    "lag": _lag,
    "media": _media,
}


def render(latest: dict[str, Any], host: dict[str, str]) -> str:
    """The markdown: machine and versions, then one table row per figure."""
    lines = [
        f"Measured on {host['cpu']}, {host['cores']} cores, {host['memory']} RAM, {host['os']}; "
        f"Python {host['python']}, Redis {host['redis']}, PostgreSQL {host['postgres']}, "
        f"uvicorn {host['uvicorn']}, Litestar {host['litestar']}, Node {host['node']}. "
        "Everything (servers, workers, Redis, Postgres, load generator) shares those cores.",
        "",
        "| benchmark | measured | target | |",
        "|---|---|---|---|",
    ]
    runs = []
    for name, section in SECTIONS.items():
        if name not in latest:
            continue
        runs.append(f"{name} {str(latest[name].get('at', '?'))[:16].replace('T', ' ')}")
        for what, measured, target, verdict in section(latest[name]):
            lines.append(f"| {what} | {measured} | {target} | {verdict} |")
    lines += ["", f"Runs: {', '.join(runs)}."]
    return "\n".join(lines) + "\n"


def write_report(results: Path = RESULTS) -> str:
    """Render ``latest.json`` into ``latest.md``; returns the markdown."""
    latest = json.loads((results / "latest.json").read_text())
    text = render(latest, machine())
    (results / "latest.md").write_text(text)
    return text


if __name__ == "__main__":
    print(write_report())
