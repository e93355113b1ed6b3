"""Many rows in one INSERT, their values handed to the driver as they are.

The ingest writes ~30 rows per 10-alert notification (alert records and outbox rows), and the
PostgreSQL journal one per notification. Through SQLAlchemy's insertmanyvalues every value of
every row went through its per-parameter handling (`construct_params`, bind processors):
about a third of the ingest's CPU (bench/README.md). Here the statement text is built once per
table and column list (on SQLite its parts, the VALUES group repeated per call), and the values
go to the driver untouched: PostgreSQL gets one array per column (`unnest`, one statement
whatever the row count), SQLite one VALUES group per row.
The statement runs on the caller's SQLAlchemy connection (`exec_driver_sql`), so inside its
transaction; `insert_rows_alone` runs it as a transaction of its own on PostgreSQL. Only for
columns whose Python values the driver takes as they are: str, int,
float, bool and None (no JSON, date or enum types).
"""

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

SQLITE_MAX_PARAMETERS = 32_000
"""Bound values per SQLite statement (its limit is 32,766 since 3.32)."""


def _columns(table: sa.Table, names: Sequence[str]) -> str:
    """The names, each checked to be a column of the table: only identifiers of the schema
    ever reach the statement text (the values are bound parameters)."""
    return ", ".join(table.c[name].name for name in names)


def _conflicts(skip: bool) -> str:
    return " ON CONFLICT DO NOTHING" if skip else ""


@lru_cache(maxsize=64)
def _postgresql(
    dialect: sa.Dialect,
    table: sa.Table,
    columns: tuple[str, ...],
    returning: tuple[str, ...],
    skip: bool,
) -> str:
    """The rows come as one array per column; `WITH ORDINALITY ... ORDER BY` inserts them in
    the order given, so generated ids ascend in that order."""
    arrays = ", ".join(
        f"${i}::{table.c[name].type.compile(dialect=dialect)}[]"
        for i, name in enumerate(columns, 1)
    )
    names = _columns(table, columns)
    # S608: schema identifiers only (see _columns); the values are bound parameters.
    return (
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM unnest({arrays}) "  # noqa: S608
        f"WITH ORDINALITY AS given({names}, row_number) ORDER BY row_number"
        f"{_conflicts(skip)} RETURNING {_columns(table, returning)}"
    )


@lru_cache(maxsize=64)
def _sqlite_parts(
    table: sa.Table, columns: tuple[str, ...], returning: tuple[str, ...], skip: bool
) -> tuple[str, str, str]:
    """The statement around its VALUES groups, and one group: the row count is not part of
    the key (a chunk can have any count up to the parameter limit, and a text of thousands of
    groups is not worth keeping)."""
    into = f"INSERT INTO {table.name} ({_columns(table, columns)}) VALUES "  # noqa: S608
    group = "(" + ", ".join("?" * len(columns)) + ")"
    return into, group, f"{_conflicts(skip)} RETURNING {_columns(table, returning)}"


def _sqlite(
    table: sa.Table, columns: tuple[str, ...], returning: tuple[str, ...], skip: bool, rows: int
) -> str:
    """One VALUES group per row, inserted in the order given."""
    into, group, tail = _sqlite_parts(table, columns, returning, skip)
    return into + ", ".join([group] * rows) + tail


async def insert_rows(
    conn: AsyncConnection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    returning: Sequence[str],
    *,
    skip_conflicts: bool,
) -> list[tuple[Any, ...]]:
    """INSERT the rows (each with the same keys: the columns), in the order given; with
    `skip_conflicts`, those that would violate a unique constraint are left out. Returns the
    `returning` columns of the rows inserted, in no particular order (generated ids ascend in
    the order given)."""
    if not rows:
        return []
    columns, returned = tuple(rows[0]), tuple(returning)
    if conn.dialect.name == "postgresql":
        sql = _postgresql(conn.dialect, table, columns, returned, skip_conflicts)
        arrays = tuple([row[name] for row in rows] for name in columns)
        result = await conn.exec_driver_sql(sql, arrays)
        return [tuple(found) for found in result]
    inserted: list[tuple[Any, ...]] = []
    per_statement = max(1, SQLITE_MAX_PARAMETERS // len(columns))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        values = tuple(row[name] for row in chunk for name in columns)
        sql = _sqlite(table, columns, returned, skip_conflicts, len(chunk))
        result = await conn.exec_driver_sql(sql, values)
        inserted.extend(tuple(found) for found in result)
    return inserted


async def insert_rows_alone(
    engine: AsyncEngine,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    returning: Sequence[str],
) -> list[tuple[Any, ...]]:
    """PostgreSQL: `insert_rows` as a transaction of its own (one statement is atomic), sent
    on the driver's connection: one round trip instead of three (BEGIN, INSERT, COMMIT) and
    none of SQLAlchemy's result handling. For the journal's append, the whole cost of a 2xx:
    through SQLAlchemy it was an eighth of the receiver's time under load (bench/README.md)."""
    if not rows:
        return []
    columns = tuple(rows[0])
    sql = _postgresql(engine.dialect, table, columns, tuple(returning), False)
    arrays = [[row[name] for row in rows] for name in columns]
    async with engine.connect() as conn:
        # No SQLAlchemy transaction is begun on it: the statement commits on its own.
        driver: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's
        records = await driver.fetch(sql, *arrays)
    return [tuple(found) for found in records]
