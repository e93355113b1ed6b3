"""webhook.bulk: many rows in one INSERT, on SQLite and PostgreSQL, inside the caller's
transaction."""

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tensafe_ops.storage import create_engine, migrate
from webhook.bulk import (
    SQLITE_MAX_PARAMETERS,
    _sqlite,
    _sqlite_parts,
    insert_rows,
    insert_rows_alone,
)
from webhook.tables import deliveries, notifications


@pytest.fixture
async def engine(state_db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(state_db_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


def delivery(key: str, payload: str = "{}") -> dict[str, object]:
    return {
        "alert_id": 7,
        "target": "slack",
        "destination": "incidents",
        "kind": "message",
        "payload": payload,
        "idempotency_key": key,
        "state": "pending",
        "attempts": 0,
        "not_before": 1.5,
        "created_at": 1.5,
        "updated_at": 1.5,
    }


async def test_skips_existing_rows_and_returns_the_inserted(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        first = await insert_rows(
            conn,
            deliveries,
            [delivery("a"), delivery("b")],
            ["idempotency_key"],
            skip_conflicts=True,
        )
        again = await insert_rows(
            conn,
            deliveries,
            [delivery("b", '{"second": true}'), delivery("c"), delivery("c")],
            ["idempotency_key"],
            skip_conflicts=True,
        )
    assert sorted(first) == [("a",), ("b",)]
    assert again == [("c",)]  # b exists, and the second c conflicts with the first
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(
                    deliveries.c.idempotency_key, deliveries.c.payload, deliveries.c.not_before
                )
            )
        ).all()
    assert sorted(rows) == [("a", "{}", 1.5), ("b", "{}", 1.5), ("c", "{}", 1.5)]


async def test_ids_ascend_in_the_order_given(engine: AsyncEngine) -> None:
    """What the journal relies on: one statement, ids generated in row order; SQLite rows
    past its parameter limit go in several statements, still in order."""
    count = SQLITE_MAX_PARAMETERS // 4 + 10  # 4 columns: more than one SQLite statement
    rows = [
        {"received_at": float(i), "body": f"body {i}", "state": "pending", "attempts": 0}
        for i in range(count)
    ]
    async with engine.begin() as conn:
        inserted = await insert_rows(conn, notifications, rows, ["id"], skip_conflicts=False)
    ids = sorted(i for (i,) in inserted)
    async with engine.connect() as conn:
        stored = dict(
            (await conn.execute(sa.select(notifications.c.id, notifications.c.body))).all()
        )
    assert [stored[i] for i in ids] == [f"body {i}" for i in range(count)]


async def test_rolls_back_with_the_callers_transaction(engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await insert_rows(conn, deliveries, [delivery("a")], ["id"], skip_conflicts=True)
            raise RuntimeError("the caller fails after the insert")
    async with engine.connect() as conn:
        assert (
            await conn.execute(sa.select(sa.func.count()).select_from(deliveries))
        ).scalar() == 0


async def test_without_skipping_a_conflict_fails(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await insert_rows(conn, deliveries, [delivery("a")], ["id"], skip_conflicts=True)
    with pytest.raises(sa.exc.IntegrityError):
        async with engine.begin() as conn:
            await insert_rows(conn, deliveries, [delivery("a")], ["id"], skip_conflicts=False)


async def test_only_columns_of_the_table(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        with pytest.raises(KeyError):
            await insert_rows(
                conn, deliveries, [{"alert_id; DROP TABLE x": 1}], ["id"], skip_conflicts=True
            )


def test_the_sqlite_statement_is_built_once_per_table_and_columns() -> None:
    """Only its VALUES groups follow the row count; the rest is cached like PostgreSQL's."""
    columns = tuple(delivery("a"))
    _sqlite_parts.cache_clear()
    two = _sqlite(deliveries, columns, ("id",), True, 2)
    three = _sqlite(deliveries, columns, ("id",), True, 3)
    assert _sqlite_parts.cache_info().hits == 1
    group = "(" + ", ".join("?" * len(columns)) + ")"
    assert (
        two.startswith("INSERT INTO webhook_deliveries (alert_id, target, ")
        and two.count(group) == 2
    )
    assert three.endswith(f"), {group} ON CONFLICT DO NOTHING RETURNING id")
    assert three.count(group) == 3


async def test_alone_commits_on_its_own_in_order(pg_url: str) -> None:
    """The PostgreSQL journal's append: committed when it returns (another connection sees
    it), ids ascending in the order given, and the pooled connection is left clean: the next
    transaction on it rolls back what it writes, as it should."""
    engine = create_async_engine(pg_url, pool_size=1, max_overflow=0)  # one connection, reused
    try:
        await migrate(engine)
        rows = [
            {"received_at": float(i), "body": f"body {i}", "state": "pending", "attempts": 0}
            for i in range(5)
        ]
        inserted = await insert_rows_alone(engine, notifications, rows, ["id"])
        ids = [i for (i,) in inserted]
        assert ids == sorted(ids)
        other = create_engine(pg_url)
        try:
            async with other.connect() as conn:
                found = (
                    await conn.execute(sa.select(notifications.c.body).order_by(notifications.c.id))
                ).scalars()
                assert list(found) == [f"body {i}" for i in range(5)]
        finally:
            await other.dispose()
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await conn.execute(sa.delete(notifications))
                raise RuntimeError("rolls back")
        async with engine.connect() as conn:
            count = await conn.execute(sa.select(sa.func.count()).select_from(notifications))
            assert count.scalar() == 5
        assert await insert_rows_alone(engine, notifications, [], ["id"]) == []
    finally:
        await engine.dispose()
