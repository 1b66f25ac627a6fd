"""Which store errors pause a projector (retry) and which mark an event as poison."""

from __future__ import annotations

import asyncpg
import pytest

from projections.apply import is_transient


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed mid-COPY"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        ConnectionResetError("reset by peer"),
    ],
)
def test_a_lost_database_connection_is_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.InvalidTextRepresentationError("invalid input syntax"),
        ValueError("cannot apply"),
    ],
)
def test_bad_data_is_not_transient(error: BaseException) -> None:
    assert not is_transient(error)
