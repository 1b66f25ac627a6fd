"""Upload memory and stream throughput: ``python -m bench media [--megabytes 500] [--runs 3]``.

Starts a private redis-server, a Postgres database and ``medio api`` (one process, production
settings, media root in a temporary folder), makes a ``--megabytes`` MB file that starts with
an MP4 ``ftyp`` box (sparse: it costs no disk), and measures:

* upload: ``curl -F video=@file`` (streamed from disk, no ``Expect``) while the API process's
  resident memory is sampled every 50 ms; baseline (after a small warm-up upload), peak growth
  and throughput. Target: growth < 50 MB.
* stream: ``GET /api/videos/{id}/stream`` of that uploaded (now cached) file by ``curl -o
  /dev/null``, against ``cat file > /dev/null`` after two ``cat`` runs to cache it; medians of
  ``--runs``. Target: stream >= 50 % of ``cat``. Next to them, the ceiling
  of any server on this machine: the same file by ``sendfile`` (zero copy) to the same client.

With ``--profile DIR`` the API is sampled by py-spy while it streams for a few more seconds.
Everything the benchmark wrote is deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

from bench import pyspy
from bench.ingest import medio_env, tokens_for
from bench.services import medio_command, migrate, postgres_database, process, redis_server
from medio.embedded import free_port

MB = 1_000_000
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
TARGET_GROWTH_MB = 50
TARGET_STREAM_RATIO = 0.9  # of sendfile to the same client: the ceiling for any TCP server


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench media", description=__doc__)
    parser.add_argument("--megabytes", type=int, default=500, help="size of the upload (MB)")
    parser.add_argument("--runs", type=int, default=3, help="stream and cat runs (median)")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy one stream here")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Api:
    port: int
    pid: int
    token: str
    media: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def medio_api(workdir: Path) -> Iterator[Api]:
    """Redis, a database and one API process whose media root is under ``workdir``."""
    media = workdir / "media"
    with redis_server() as redis_url, postgres_database() as database_url:
        env = medio_env(
            redis_url,
            database_url,
            MEDIO_MEDIA_ROOT=str(media),
            MEDIO_DATA_DIR=str(workdir / "data"),
        )
        migrate(env)
        port = free_port()
        with process(medio_command("api", "--port", str(port), "--workers", "1"), env, port) as api:
            yield Api(port, api.pid, tokens_for(["bench_parent"])[0], media)


def make_video(path: Path, size: int) -> None:
    """A sparse file of ``size`` bytes that the upload sniffing takes for an MP4."""
    with path.open("wb") as file:
        file.write(MP4_HEAD)
        file.truncate(size)


class RssSampler:
    """The resident memory of a process tree, sampled on a thread every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.every = every
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += int(proc.memory_info().rss)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.rss())
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def upload(api: Api, path: Path) -> tuple[dict[str, Any], float]:
    """``POST /api/videos/upload`` of ``path`` by curl; the created video and the seconds."""
    started = time.perf_counter()
    completed = subprocess.run(
        [
            "curl", "--silent", "--show-error", "--fail-with-body",
            "-H", f"Authorization: Bearer {api.token}",
            "-H", "Expect:",
            "-F", "title=Bench upload",
            "-F", f"video=@{path};type=video/mp4",
            f"{api.url}/api/videos/upload",
        ],
        capture_output=True,
        check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    return httpx.Response(200, content=completed.stdout).json(), seconds


def fetch(port: int, path: str, token: str | None = None) -> tuple[float, int]:
    """Seconds to receive a whole ``200`` response body with curl into /dev/null, its length."""
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    completed = subprocess.run(
        [
            "curl", "--silent", "--show-error", "--fail", "-o", os.devnull,
            "-w", "%{http_code} %{time_total} %{size_download}",
            *auth, f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        check=True,
        text=True,
    )  # fmt: skip
    status, seconds, size = completed.stdout.split()
    if status != "200":
        raise RuntimeError(f"GET {path}: {status}")
    return float(seconds), int(size)


@contextlib.contextmanager
def sendfile_server(path: Path) -> Iterator[int]:
    """The ceiling: a socket that answers any request with ``path`` by ``sendfile`` (no copy)."""
    listener = socket.create_server(("127.0.0.1", 0))
    size = path.stat().st_size

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                with conn, path.open("rb") as file:
                    conn.recv(65536)
                    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
                    conn.sendfile(file)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(timeout=5)


def stream_seconds(api: Api, video_id: int) -> tuple[float, int]:
    """Seconds to receive the whole ``/stream`` of a video, and the bytes received."""
    return fetch(api.port, f"/api/videos/{video_id}/stream", api.token)


def cat_seconds(path: Path) -> float:
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        subprocess.run(["cat", str(path)], stdout=sink, check=True)
    return time.perf_counter() - started


def stored_file(api: Api, video: dict[str, Any]) -> Path:
    return api.media / str(video["file_path"]).removeprefix("/uploads/")


def measure(api: Api, source: Path, size: int, runs: int, profile: Path | None) -> dict[str, Any]:
    video, upload_figures = measure_upload(api, source, size)
    stored = stored_file(api, video)
    assert stored.stat().st_size == size, "the stored file is not the uploaded size"
    figures: dict[str, Any] = {
        "megabytes": size / MB,
        "upload": upload_figures,
        "stream": measure_stream(api, video["id"], stored, runs),
    }
    if profile is not None:
        figures["stream"]["profile"] = profile_stream(api, video["id"], profile)
    return figures


def measure_upload(api: Api, source: Path, size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The created video, and the API's memory and throughput while it was uploaded."""
    warm_path = source.with_name("warm.mp4")
    make_video(warm_path, 2 * MB)
    upload(api, warm_path)  # code paths loaded, buffers allocated: the baseline is steady
    warm_path.unlink()
    time.sleep(0.5)
    with RssSampler(api.pid) as sampler:
        baseline = sampler.rss()
        video, seconds = upload(api, source)
    after = sampler.rss()
    peak = max(sampler.samples, default=baseline)
    return video, {
        "seconds": round(seconds, 2),
        "mb_per_s": round(size / MB / seconds, 1),
        "rss_baseline_mb": round(baseline / MB, 1),
        "rss_peak_growth_mb": round((peak - baseline) / MB, 1),
        "rss_after_mb": round(after / MB, 1),
        "samples": len(sampler.samples),
    }


def measure_stream(api: Api, video_id: int, stored: Path, runs: int) -> dict[str, Any]:
    """Stream, ``cat`` and ``sendfile`` of the cached ``stored`` file: medians of ``runs``."""
    size = stored.stat().st_size
    cats = [cat_seconds(stored) for _ in range(2)]  # into the page cache
    cats = [cat_seconds(stored) for _ in range(runs)]
    server = psutil.Process(api.pid)
    cpu_before = server.cpu_times()
    streams = [stream_seconds(api, video_id) for _ in range(runs)]
    cpu_after = server.cpu_times()
    with sendfile_server(stored) as port:
        ceilings = [fetch(port, "/") for _ in range(runs)]
    assert all(n == size for _, n in streams + ceilings), "a response was short"
    stream_mb_s = size / MB / statistics.median(s for s, _ in streams)
    cat_mb_s = size / MB / statistics.median(cats)
    ceiling_mb_s = size / MB / statistics.median(s for s, _ in ceilings)
    gigabytes = runs * size / 1e9
    return {
        "runs": runs,
        "stream_mb_per_s": round(stream_mb_s),
        "cat_mb_per_s": round(cat_mb_s),
        "ratio": round(stream_mb_s / cat_mb_s, 3),
        "loopback_sendfile_mb_per_s": round(ceiling_mb_s),
        "ratio_to_sendfile": round(stream_mb_s / ceiling_mb_s, 3),
        # CPU the API spent per GB streamed: steadier than MB/s on a shared machine;
        # system time is the kernel's socket path, user time Python's
        "api_cpu_user_s_per_gb": round((cpu_after.user - cpu_before.user) / gigabytes, 3),
        "api_cpu_system_s_per_gb": round((cpu_after.system - cpu_before.system) / gigabytes, 3),
        "stream_seconds": [round(s, 3) for s, _ in streams],
        "cat_seconds": [round(s, 3) for s in cats],
        "sendfile_seconds": [round(s, 3) for s, _ in ceilings],
    }


def profile_stream(api: Api, video_id: int, directory: Path, seconds: float = 8) -> dict[str, Any]:
    """py-spy on the API while it streams the video again and again for ``seconds``."""
    with pyspy.recording({"api_stream": api.pid}, seconds, directory) as files:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            stream_seconds(api, video_id)
    return pyspy.summary(files["api_stream"])


def main(argv: list[str]) -> dict[str, Any]:
    """Run the benchmark; print and return its figures."""
    args = _parse(argv)
    size = args.megabytes * MB
    with tempfile.TemporaryDirectory(prefix="medio-bench-media-") as tmp:
        workdir = Path(tmp)
        source = workdir / "upload.mp4"
        make_video(source, size)
        with medio_api(workdir) as api:
            figures = measure(api, source, size, args.runs, args.profile)
    result = {
        **figures,
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
        "targets": {
            "upload_growth_mb": TARGET_GROWTH_MB,
            "stream_vs_sendfile": TARGET_STREAM_RATIO,
        },
    }
    _print(result)
    return result


def _print(result: dict[str, Any]) -> None:
    up, st = result["upload"], result["stream"]
    growth_ok = "ok" if up["rss_peak_growth_mb"] < TARGET_GROWTH_MB else "MISSED"
    ratio_ok = "ok" if st["ratio_to_sendfile"] >= TARGET_STREAM_RATIO else "MISSED"
    print(f"media bench: {result['megabytes']:g} MB file, {result['cpus']} CPUs")
    print(
        f"  upload: {up['mb_per_s']} MB/s; API RSS {up['rss_baseline_mb']} MB, peak growth "
        f"{up['rss_peak_growth_mb']} MB over {up['samples']} samples "
        f"(target < {TARGET_GROWTH_MB} MB: {growth_ok})"
    )
    print(
        f"  stream: {st['stream_mb_per_s']} MB/s vs cat {st['cat_mb_per_s']} MB/s = "
        f"{st['ratio']:.0%}; the ceiling, sendfile over loopback: "
        f"{st['loopback_sendfile_mb_per_s']} MB/s, stream is {st['ratio_to_sendfile']:.0%} of it "
        f"(target >= {TARGET_STREAM_RATIO:.0%}: {ratio_ok})"
    )
    print(
        f"  stream: API CPU per GB {st['api_cpu_user_s_per_gb']} s user (Python) + "
        f"{st['api_cpu_system_s_per_gb']} s system (kernel)"
    )
    if "profile" in st:
        pyspy.print_summary("stream", st["profile"])
