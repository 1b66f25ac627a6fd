"""``python -m bench [NAME ...] [-- options]``: run benchmarks, print figures, save JSON.

Each benchmark is a module with ``main(argv) -> dict`` of figures. With no name every one
runs (``make bench``); ``python -m bench projector --events 50000`` runs one with options.
Results go to ``bench/results/<name>.json`` and are merged into ``bench/results/latest.json``.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.report import write_report
from bench.services import stop_cleanly_on_sigterm

RESULTS = Path(__file__).resolve().parent / "results"

# name -> "module:function"; the function takes the remaining command-line arguments.
BENCHMARKS: dict[str, str] = {
    "ingest": "bench.ingest:main",
    "cluster": "bench.cluster:main",
    "reads": "bench.reads:main",
    "projector": "bench.projector:main",
    "lag": "bench.lag:main",
    "media": "bench.media:main",
}


def _run(name: str, argv: list[str]) -> dict[str, Any]:
    module_name, _, function = BENCHMARKS[name].partition(":")
    module = importlib.import_module(module_name)
    entry = getattr(module, function, None) or getattr(module, "run", None)
    if entry is None:
        raise SystemExit(f"bench {name}: {module_name} has no {function}()")
    result: dict[str, Any] = entry(argv) if entry.__name__ == function else entry()
    return result


def _save(name: str, result: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    stamped = {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **result}
    (RESULTS / f"{name}.json").write_text(json.dumps(stamped, indent=2) + "\n")
    latest_path = RESULTS / "latest.json"
    latest = json.loads(latest_path.read_text()) if latest_path.exists() else {}
    latest[name] = stamped
    latest_path.write_text(json.dumps(latest, indent=2) + "\n")


def main(args: list[str]) -> None:
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(BENCHMARKS))
        return
    if args and args[0] in BENCHMARKS:
        names, rest = [args[0]], args[1:]
    else:
        names, rest = list(BENCHMARKS), args
    for name in names:
        _save(name, _run(name, rest))
    print(f"results: {RESULTS / 'latest.json'}")
    print(write_report())  # the markdown table docs/benchmarks.md quotes
    print(f"table: {RESULTS / 'latest.md'}")


if __name__ == "__main__":
    stop_cleanly_on_sigterm()
    main(sys.argv[1:])
