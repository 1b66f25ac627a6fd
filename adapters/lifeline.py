"""Child processes that die with the process that started them, however it dies.

``medio dev`` stops its children in order on Ctrl-C, but a ``kill -9`` (or a crash) runs no
code of its own: without help its Redis, API and workers keep running, orphaned, on the data
dir's files (ten such Redis servers were found on one machine). Linux's
``prctl(PR_SET_PDEATHSIG)`` makes the kernel signal a child when its parent dies; set in the
child between fork and exec it covers every way the parent can end. It is kept across exec.
Other systems have no such call: there a child outlives a killed parent (a Ctrl-C, a SIGTERM
or a SIGHUP still stops everything in order).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()  # looked up before any fork: a forked child only calls it


def die_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``signum`` when this process
    (the thread that spawns it) ends; None where the system cannot do that."""
    if _PRCTL is None:
        return None
    prctl, parent = _PRCTL, os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: nobody will signal us
            os.kill(os.getpid(), signum)

    return arm


def forks_die_with_this_process(signum: int = signal.SIGTERM) -> None:
    """Every process forked from now on by this one (RQ's scheduler) gets ``signum`` when
    this process ends, so a killed worker leaves no scheduler behind holding its locks."""
    if _PRCTL is not None:
        prctl = _PRCTL
        os.register_at_fork(after_in_child=lambda: prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0))
