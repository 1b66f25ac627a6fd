"""A fault for tests: one call of an async function that fails, the others passed through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


class FailingCall:
    """``real``, except that its ``failing``-th call (from 1) raises ``error``; ``calls``
    counts them all."""

    def __init__(self, real: Callable[..., Awaitable[Any]], failing: int, error: Exception) -> None:
        self.real, self.failing, self.error = real, failing, error
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.failing:
            raise self.error
        return await self.real(*args, **kwargs)
