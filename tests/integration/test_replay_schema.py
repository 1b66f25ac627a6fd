"""``medio replay`` swaps rebuilt tables in by renaming them: what it leaves must be exactly the
schema the migrations create (names of tables, indexes and constraints, columns), on Postgres
and on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from projector_env import Stack, isolated_stack

from adapters.settings import Settings
from bench.workload import append_all, realistic_events
from projections.replay import rebuild, verify
from projections.runtime import project_pending
from services.container import build_container


@pytest.fixture(params=["postgres", "sqlite"])
def stack(
    request: pytest.FixtureRequest, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:  # after the run's environment is set
    sqlite_dir = str(tmp_path_factory.mktemp("sqlite")) if request.param == "sqlite" else None
    with isolated_stack(sqlite_dir=sqlite_dir) as built:
        yield built


def _schema(conn: sa.Connection) -> dict[str, Any]:
    """Every table with its columns, keys, indexes and constraints, as the inspector sees it."""
    inspector = sa.inspect(conn)
    tables: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        tables[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            ],
            "primary key": inspector.get_pk_constraint(table),
            "indexes": sorted(inspector.get_indexes(table), key=lambda i: str(i["name"])),
            "unique": sorted(inspector.get_unique_constraints(table), key=lambda u: str(u["name"])),
            "foreign keys": inspector.get_foreign_keys(table),
            "checks": inspector.get_check_constraints(table),
        }
    if conn.dialect.name == "postgresql":
        tables["sequences"] = sorted(inspector.get_sequence_names())
    return tables


async def test_rebuild_leaves_the_schema_the_migrations_created(stack: Stack) -> None:
    container = build_container(stack.settings)
    try:
        await append_all(container.redis, 1, realistic_events(600, seed=61))
        await project_pending(container)
        async with container.engine.connect() as conn:
            migrated = await conn.run_sync(_schema)

        await rebuild(container)

        async with container.engine.connect() as conn:
            assert await conn.run_sync(_schema) == migrated
        assert (await verify(container)).differences == {}
    finally:
        await container.close()
