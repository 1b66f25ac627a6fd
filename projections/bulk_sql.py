"""A batch of rows in one Postgres statement: the rows sent as one JSON array parameter.

``executemany`` costs asyncpg a bind and an execute per row and Postgres a statement execution
per row; a multi-row ``VALUES`` list is a new statement text (to compile and plan) for every
row count; typed arrays cost asyncpg's binary encoder about half a microsecond per value. One
JSON text of the rows (``msgspec`` encodes it in C), expanded by ``json_array_elements`` and
cast per column, is one statement whose text depends only on the table, so asyncpg prepares it
once per connection and a batch is one round trip and one string.

JSON carries every value exactly: integers as digits, floats in their shortest round-trip
form, dates and aware datetimes in ISO form (microseconds kept), ``None`` as ``null``.

Only on asyncpg: these are the ``asyncpg`` backends of the projections' row writers, whose
``sqlalchemy`` backends have the same effect row for row on any database
(``projections.base.RowWriters``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import asyncpg
import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_quote = _DIALECT.identifier_preparer.quote
_encode = msgspec.json.Encoder().encode


async def raw_connection(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn`` (same transaction)."""
    if conn.dialect.driver != "asyncpg":
        raise TypeError(f"an asyncpg row writer cannot write through {conn.dialect.driver}")
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def execute(raw: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``sql`` (from ``insert_sql`` / ``coalescing_update_sql``) for ``rows``.

    Errors are raised as SQLAlchemy's would be, so the projector tells a bad row (integrity,
    data) from the database being unavailable.
    """
    try:
        await raw.execute(sql, _encode(rows).decode())
    except asyncpg.PostgresError as exc:
        state = str(getattr(exc, "sqlstate", "") or "")
        if state.startswith("23"):
            raise sa.exc.IntegrityError(sql, None, exc) from exc
        if state.startswith("22"):
            raise sa.exc.DataError(sql, None, exc) from exc
        raise sa.exc.OperationalError(sql, None, exc) from exc
    except asyncpg.InterfaceError as exc:
        raise sa.exc.OperationalError(sql, None, exc) from exc


def _rows(table: sa.Table, columns: Sequence[str]) -> str:
    """``SELECT (r->>0)::BIGINT AS "a", ...`` over the JSON array of rows in ``$1``."""
    casts = ", ".join(
        f"(r->>{i})::{table.c[name].type.compile(dialect=_DIALECT)} AS {_quote(name)}"
        for i, name in enumerate(columns)
    )
    return f"SELECT {casts} FROM json_array_elements($1::text::json) AS r"


@lru_cache(maxsize=64)
def insert_sql(
    table: sa.Table, columns: tuple[str, ...], add_on_conflict: tuple[str, ...] = ()
) -> str:
    """Insert the rows; with ``add_on_conflict`` (the key columns), add every other column to
    the row already there instead."""
    name = _quote(table.name)
    listed = ", ".join(_quote(c) for c in columns)
    sql = f"INSERT INTO {name} ({listed}) {_rows(table, columns)}"
    if add_on_conflict:
        keys = ", ".join(_quote(c) for c in add_on_conflict)
        sets = ", ".join(
            f"{_quote(c)} = {name}.{_quote(c)} + EXCLUDED.{_quote(c)}"
            for c in columns
            if c not in add_on_conflict
        )
        sql += f" ON CONFLICT ({keys}) DO UPDATE SET {sets}"
    return sql


@lru_cache(maxsize=64)
def coalescing_update_sql(table: sa.Table, key: str, columns: tuple[str, ...]) -> str:
    """Set ``columns`` of the row whose ``key`` matches (rows are ``(key, *columns)``), where
    the new value is not NULL."""
    name = _quote(table.name)
    sets = ", ".join(f"{_quote(c)} = COALESCE(v.{_quote(c)}, {name}.{_quote(c)})" for c in columns)
    return (
        f"UPDATE {name} SET {sets} FROM ({_rows(table, (key, *columns))}) AS v "
        f"WHERE {name}.{_quote(key)} = v.{_quote(key)}"
    )
