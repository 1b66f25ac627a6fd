"""The composition root: the container of adapters with the command-side check plugged in.

API, workers, CLI and tests build their container here, and a serving process readies itself
with what this module also hands out: logging, the start-up check of the stores
(``check_at_start``) and the heap settled once start-up is over (``adapters.heap``). The adapters
(``adapters.container``) know nothing of use cases; the check that a restarted Redis is not
behind the archive (``projections.recovery``) runs before the first command that changes the
command side, so every process that appends must have it, and this is the one place that
plugs it in.
"""

from __future__ import annotations

from adapters import heap
from adapters.container import Container, build_adapters
from adapters.logs import configure_logging
from projections.recovery import check_at_start

__all__ = ["Container", "build_container", "check_at_start", "configure_logging", "heap"]
from adapters.settings import Settings
from domain.clock import Clock
from projections.recovery import CommandSideGate


def build_container(
    settings: Settings,
    clock: Clock | None = None,
    pool_size: int = 10,
    overflow: int | None = None,
) -> Container:
    """Wire the adapters for ``settings`` and gate their command side on the archive check
    (``pool_size`` and ``overflow``: ``adapters.db.create_engine``)."""
    container = build_adapters(settings, clock=clock, pool_size=pool_size, overflow=overflow)
    # A restarted Redis is checked against the archive before its first command.
    container.pipeline.gate = CommandSideGate(container)
    return container
