"""Configuration and store errors of any ``medio`` command as one line, not a traceback.

A bad ``MEDIO_DATABASE_URL``, a stopped Redis or a database without Medio's tables is the
user's to fix, and a 70-200 line traceback hides the one line that says what to fix. Errors
that are not of these kinds (bugs) keep their traceback.
"""

from __future__ import annotations

from typing import Any

import click
import redis
from sqlalchemy.exc import SQLAlchemyError

from adapters.settings import SettingsError

MISSING_TABLE = ("no such table", "UndefinedTable")


def one_line(exc: BaseException) -> str | None:
    """What to tell the user about ``exc``, or None when it is not a configuration error."""
    if isinstance(exc, SettingsError):
        return str(exc)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"Redis is unreachable: {first_line(exc)}"
    if isinstance(exc, SQLAlchemyError):
        cause = getattr(exc, "orig", None)
        text = f"{type(cause).__name__}: {first_line(exc)}" if cause else first_line(exc)
        if any(marker in text for marker in MISSING_TABLE):
            return f"the database has no Medio tables yet: run `medio migrate` first ({text})"
        return f"the database refused: {text}"
    if isinstance(exc, ConnectionError | TimeoutError):
        return f"a store is unreachable: {first_line(exc)}"
    return None


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class MedioGroup(click.Group):
    """A command group whose commands end with one line on configuration errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            message = one_line(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None
