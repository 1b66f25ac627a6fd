"""Jobs the workers enqueue on a schedule. Adding one is one line in ``PERIODIC_JOBS``.

Every ``medio worker`` runs the same schedule; a Redis key per job (``SET NX`` with the
interval as its TTL) makes exactly one of them enqueue each run.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.queues import MAINTENANCE


@dataclass(frozen=True)
class PeriodicJob:
    """``function`` (a dotted path, called without arguments) every ``every_seconds``."""

    name: str
    function: str
    every_seconds: float
    queue: str = MAINTENANCE
    timeout_seconds: int = 300


PERIODIC_JOBS: list[PeriodicJob] = [
    # Expired records never answer (they are checked on read); this only frees their rows.
    PeriodicJob("prune-idempotency", "workers.pruning.prune_idempotency_records_job", 3600),
    # Postgres: keeps MEDIO_ARCHIVE_PARTITIONS_AHEAD empty archive partitions ready.
    PeriodicJob("archive-partitions", "workers.partitions.ensure_archive_partitions_job", 600),
    # Off unless MEDIO_RETENTION_DAYS is set; pauses the projectors for the length of a run.
    PeriodicJob("retention", "workers.retention.apply_retention_job", 3600, timeout_seconds=1800),
]


def due_key(job: PeriodicJob) -> str:
    """Exists until ``job`` is next due."""
    return f"medio:periodic:{job.name}"
