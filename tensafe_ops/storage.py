"""The state database: engine creation, Alembic migrations and a namespaced JSON key-value store.

SQLite (aiosqlite) by default, PostgreSQL (asyncpg) for several replicas.
"""

import asyncio
import json
import time
from collections.abc import Coroutine, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

T = TypeVar("T")

metadata = sa.MetaData()

state_kv = sa.Table(
    "state_kv",
    metadata,
    sa.Column("namespace", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

_MIGRATION_LOCK_ID = 0x7E5AFE  # pg advisory lock: one replica migrates at a time
_BATCH = 500


async def within(work: Coroutine[Any, Any, T], seconds: float, keep: set[asyncio.Task[Any]]) -> T:
    """Wait at most `seconds` for a database call, which runs in a task of its own.

    Cancelling the caller is not enough to bound a call on a hung database: SQLAlchemy
    finishes closing a connection (a rollback the database never answers) before letting a
    cancelled task go. So the call gets a task, the caller stops waiting for it after
    `seconds` (TimeoutError), and the task finishes whenever the database answers (or the
    connection dies); it is kept in `keep` meanwhile so that shutdown can wait for it.
    A write started this way also completes when the client goes away.

    `asyncio.wait` rather than `wait_for(shield(task))`: it never cancels the task, and a
    cancellation of the caller always reaches the caller. Python 3.11's `wait_for` returns the
    result instead when the task finishes in the same step, and a loop cancelled at shutdown
    (the operator's recorder) then went on running."""
    task = asyncio.create_task(work)
    keep.add(task)
    task.add_done_callback(keep.discard)
    done, _ = await asyncio.wait((task,), timeout=seconds)
    if not done:
        raise TimeoutError
    return task.result()


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping: with asyncpg it costs three round trips (BEGIN, ping, ROLLBACK) on every
    # checkout, more than many of our transactions themselves. After a database restart the
    # first statement on a dead pooled connection fails instead, SQLAlchemy then discards the
    # pool's connections, and the caller's own retry (503 to Alertmanager, the ingest and
    # dispatch loops' next round, the next refresh) succeeds.
    # A connection attempt to a database that does not answer gives up after 10 s (asyncpg's
    # default is 60), and so does a wait for a free connection (SQLAlchemy's is 30).
    return create_async_engine(
        url, pool_size=5, max_overflow=5, pool_timeout=10, connect_args={"timeout": 10}
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL: a commit appends to the log instead of rewriting pages through a rollback journal,
    and readers no longer wait for the writer. synchronous=FULL keeps every commit on disk
    (fsync of the WAL per commit), so a 2xx survives a power loss, not only a crash."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _upgrade(connection: sa.Connection) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("tensafe_ops") / "migrations"))
    cfg.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (safe to run from several replicas at once)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


def _upsert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


class StateStore:
    """Namespaced JSON values, e.g. ("zendesk.cursor", "tickets") or ("zendesk.ticket", "42")."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def get(self, namespace: str, key: str) -> Any:
        async with self.engine.connect() as conn:
            row = await conn.execute(
                sa.select(state_kv.c.value).where(
                    state_kv.c.namespace == namespace, state_kv.c.key == key
                )
            )
            value = row.scalar_one_or_none()
        return None if value is None else json.loads(value)

    async def get_all(self, namespace: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(state_kv.c.key, state_kv.c.value).where(state_kv.c.namespace == namespace)
            )
            return {key: json.loads(value) for key, value in rows}

    async def put(self, namespace: str, key: str, value: Any) -> None:
        await self.put_many(namespace, {key: value})

    async def put_many(self, namespace: str, values: Mapping[str, Any]) -> None:
        """Upsert many keys in one transaction."""
        if not values:
            return
        async with self.engine.begin() as conn:
            await _put_rows(conn, namespace, values)

    async def delete_many(self, namespace: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        async with self.engine.begin() as conn:
            for start in range(0, len(keys), _BATCH):
                await conn.execute(
                    sa.delete(state_kv).where(
                        state_kv.c.namespace == namespace,
                        state_kv.c.key.in_(keys[start : start + _BATCH]),
                    )
                )

    async def replace_namespace(self, namespace: str, values: Mapping[str, Any]) -> None:
        """Make the namespace hold exactly these keys, atomically."""
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(state_kv).where(state_kv.c.namespace == namespace))
            await _put_rows(conn, namespace, values)


async def _put_rows(conn: AsyncConnection, namespace: str, values: Mapping[str, Any]) -> None:
    """Upsert in batches, serialising each batch only when it is sent: 10,000 values never
    exist as JSON text all at once. (The pairs are taken up front: the caller may change
    its mapping while a batch is awaited.)"""
    insert = _upsert(conn.dialect.name)
    now = time.time()
    items = list(values.items())
    for start in range(0, len(items), _BATCH):
        rows = [
            {
                "namespace": namespace,
                "key": k,
                "value": json.dumps(v, separators=(",", ":")),
                "updated_at": now,
            }
            for k, v in items[start : start + _BATCH]
        ]
        stmt = insert(state_kv).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=[state_kv.c.namespace, state_kv.c.key],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
        await conn.execute(stmt)


def describe_error(exc: BaseException) -> str:
    """The error without the SQL statement and its parameters (they hold alert content)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}".splitlines()[0][:500]
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
