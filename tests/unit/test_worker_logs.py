"""A worker's RQ lines go through Medio's JSON formatter; routine ones only at DEBUG."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from rq.logutils import setup_loghandlers

from adapters.logs import configure_logging
from workers.worker import RQ_LOGGERS, quiet_rq


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in RQ_LOGGERS})
    yield
    root.handlers, root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _worker_logs(level: str) -> None:
    configure_logging(level)
    quiet_rq(level)
    setup_loghandlers(None, name="rq.worker")  # what worker.work(logging_level=None) does
    rq = logging.getLogger("rq.worker")
    rq.info("Worker w1: medio-maintenance: Job OK (job-1)")
    rq.warning("Worker w1: cold shut down")


@pytest.mark.usefixtures("restored_logging")
def test_at_info_rq_shows_only_warnings_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    _worker_logs("INFO")
    lines = _lines(capsys)
    assert [(line["logger"], line["level"], line["msg"]) for line in lines] == [
        ("rq.worker", "warning", "Worker w1: cold shut down")
    ]


@pytest.mark.usefixtures("restored_logging")
def test_at_debug_rq_shows_its_routine_lines_too(capsys: pytest.CaptureFixture[str]) -> None:
    _worker_logs("DEBUG")
    assert [line["level"] for line in _lines(capsys)] == ["info", "warning"]
