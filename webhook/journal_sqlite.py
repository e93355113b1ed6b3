"""The journal in a SQLite file of its own, next to the state database file.

Why a second file: SQLite has one writer per database. With the journal in the state
database, every append (the 2xx path) queued behind ingest transactions, outbox claims and
sweeps; in its own file, an append waits only for other appends. Why plain `sqlite3` on one
dedicated thread instead of SQLAlchemy over aiosqlite: an append is the whole cost of a 2xx,
and one thread hop per group commit (instead of one per statement, plus pool checkout) is what
lets the receiver keep up with bursts (bench/README.md). The connection is only ever used from
that thread.

Atomicity across the two files: the ingest transaction on the state database records the ids
it applies in `webhook_journal_applied`; only after it commits are the entries deleted from the
journal file, then those records. A crash in between leaves entries that `claim` recognises
as applied, so nothing is applied twice and nothing is lost. The deleting is queued and done
for everything ingested within FORGET_DELAY in two commits, not two per ingest batch: each
commit is an fsync, and under a steady flow of pages they queued behind the next page's
writes. Queued entries are already invisible to `pending` and `backlog`.
"""

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tensafe_ops.log import get_logger
from webhook.journal import (
    ERROR_MAX,
    GROUP_COMMIT_MAX,
    Backlog,
    Entry,
    Journal,
    Row,
    Writer,
    backlog_of,
    entry,
)
from webhook.tables import journal_applied

T = TypeVar("T")
log = get_logger("tensafe_ops.webhook")

FORGET_DELAY = 0.05
"""Seconds applied entries wait to be deleted together with those applied after them."""
FORGET_RETRY = 1.0
SHRINK_PAGES = (64, 1024)
"""Free pages (4 KiB each) past which the file gives space back after deleting: when the
journal is empty (a burst has drained), and in any case. A burst must not leave the journal
at its high-water size for good, and a steady flow should not pay a checkpoint per delete."""
WAL_LIMIT = 1024 * 1024
"""Bytes the write-ahead log is cut back to after a checkpoint (SQLite keeps it at its
largest size otherwise)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS ix_notifications_state ON notifications (state, id);
"""


@lru_cache(maxsize=GROUP_COMMIT_MAX)
def _insert_sql(rows: int) -> str:
    """A multi-row INSERT (GROUP_COMMIT_MAX rows take 512 parameters: below SQLite's limit)."""
    values = ",".join(["(?, ?)"] * rows)  # placeholders only: the values are parameters
    return f"INSERT INTO notifications (received_at, body) VALUES {values}"  # noqa: S608


def journal_path(engine: AsyncEngine) -> Path | None:
    """`<dir>/<name>-webhook-journal.db` for a SQLite state database file, else None."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    state = Path(database)
    return state.with_name(f"{state.stem}-webhook-journal.db")


class SqliteFileJournal(Journal):
    def __init__(self, path: Path, writing: Writer, timeout: float = 10.0) -> None:
        super().__init__(timeout)
        self.path = path
        self.writing = writing
        """Write transactions on the state database (for `webhook_journal_applied`)."""
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-journal")
        self._db: sqlite3.Connection | None = None
        self._forgetting: set[int] = set()
        """Applied entries queued for deleting (still in the file, no longer pending)."""
        self._forgetter: asyncio.Task[None] | None = None

    # -- on the journal thread ----------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                # Incremental: freed pages can be given back (`_shrink`). A file made by an
                # older release is rebuilt once for it (it is small unless a backlog waits).
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                db.execute("VACUUM")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            db.execute("PRAGMA synchronous=FULL")  # a 2xx survives a power loss too
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    def _shrink(self) -> None:
        """Give the space of deleted entries back to the file system once there is much of
        it (after a burst drained), and cut the write-ahead log back to `WAL_LIMIT`."""
        db = self._connection()
        free: int = db.execute("PRAGMA freelist_count").fetchone()[0]
        drained, anyway = SHRINK_PAGES
        if free < drained:
            return
        if free < anyway and db.execute("SELECT 1 FROM notifications LIMIT 1").fetchone():
            return
        # executescript steps the pragma to its end; execute() would free one page per call.
        db.executescript("PRAGMA incremental_vacuum;")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in one write transaction. On any error the connection is dropped (the
        transaction with it) and the next call opens a fresh one."""
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            result = work(db)
            db.execute("COMMIT")
        except BaseException:
            self._close()
            raise
        return result

    def _write(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._transaction(lambda db: db.execute(sql, params).fetchall())

    def _insert_rows(self, rows: Sequence[Row]) -> list[int]:
        """One statement in autocommit mode: one transaction, and one call into SQLite. Each
        call gives up the GIL and waits to take it back from the event loop's thread, so the
        BEGIN, a step per row and the COMMIT of an executemany doubled the time an append
        took under load (bench/README.md)."""
        db = self._connection()
        try:
            cursor = db.execute(_insert_sql(len(rows)), [value for row in rows for value in row])
        except BaseException:
            self._close()
            raise
        # One connection, AUTOINCREMENT, one statement: the rows got the consecutive ids
        # ending at the last one inserted, in the order of the rows.
        last = cursor.lastrowid
        if last is None:  # typed optional; an INSERT always sets it
            raise sqlite3.DatabaseError("no row id after inserting notifications")
        return list(range(last - len(rows) + 1, last + 1))

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._connection().execute(sql, params).fetchall()

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, func, *args)

    # -- the Journal contract -----------------------------------------------------------------

    async def _insert(self, rows: Sequence[Row]) -> list[int]:
        ids: list[int] = await self._run(self._insert_rows, rows)
        return ids

    def _queued(self) -> str:
        """The ids queued for deleting, as a JSON array (`NOT IN json_each(?)` skips them)."""
        return json.dumps(sorted(self._forgetting))

    async def pending(self, limit: int) -> list[Entry]:
        rows: list[Any] = await self._run(
            self._read,
            "SELECT id, received_at, body, attempts FROM notifications "
            "WHERE state = 'pending' AND id NOT IN (SELECT value FROM json_each(?)) "
            "ORDER BY id LIMIT ?",
            (self._queued(), limit),
        )
        return [entry(row) for row in rows]

    async def claim(self, conn: AsyncConnection, entry_ids: Sequence[int]) -> set[int]:
        if not entry_ids:
            return set()
        done = await conn.execute(
            sa.select(journal_applied.c.id).where(journal_applied.c.id.in_(entry_ids))
        )
        mine = set(entry_ids) - set(done.scalars())
        if mine:
            await conn.execute(
                sqlite_dialect.insert(journal_applied).on_conflict_do_nothing(),
                [{"id": i} for i in sorted(mine)],
            )
        return mine

    async def forget(self, handled: set[int]) -> None:
        """After the ingest commit: every entry of the batch is applied (now or by an earlier
        ingest that died before forgetting it). Queued; see `_forget_queued`."""
        if not handled:
            return
        self._forgetting |= handled
        if self._forgetter is None or self._forgetter.done():
            self._forgetter = asyncio.create_task(self._forget_queued(), name="journal-forget")

    async def _forget_queued(self) -> None:
        """Delete the queued entries from the journal file first, then their records: if
        this stops half-way, `claim` still skips them next time. A failure keeps them queued
        for another try (and applied: nothing is lost or applied twice meanwhile)."""
        while self._forgetting:
            await asyncio.sleep(FORGET_DELAY)  # entries applied meanwhile join these commits
            ids = sorted(self._forgetting)
            try:
                await self._run(self._forget, ids)
                async with self.writing() as conn:
                    await conn.execute(
                        sa.delete(journal_applied).where(journal_applied.c.id.in_(ids))
                    )
            except Exception as exc:
                log.warning("journal_cleanup_failed", entries=len(ids), error=type(exc).__name__)
                await asyncio.sleep(FORGET_RETRY)
                continue
            self._forgetting.difference_update(ids)

    async def tidy(self) -> None:
        while self._forgetter is not None and not self._forgetter.done():
            await asyncio.wait([self._forgetter])

    def _forget(self, ids: list[int]) -> None:
        self._transaction(
            lambda db: db.executemany("DELETE FROM notifications WHERE id = ?", [(i,) for i in ids])
        )
        self._shrink()

    async def set_aside(self, entry_id: int, error: str) -> None:
        await self._run(
            self._write,
            "UPDATE notifications SET state = 'failed', last_error = ?, attempts = attempts + 1 "
            "WHERE id = ?",
            (error[:ERROR_MAX], entry_id),
        )

    async def record_failure(self, entry_id: int, error: str, give_up_after: int) -> bool:
        rows: list[Any] = await self._run(
            self._write,
            "UPDATE notifications SET attempts = attempts + 1, last_error = ?, "
            "state = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE 'pending' END "
            "WHERE id = ? AND state = 'pending' RETURNING state",
            (error[:ERROR_MAX], give_up_after, entry_id),
        )
        return bool(rows) and rows[0][0] == "failed"

    async def failed(self, limit: int) -> list[tuple[Entry, str]]:
        rows: list[Any] = await self._run(
            self._read,
            "SELECT id, received_at, body, attempts, last_error FROM notifications "
            "WHERE state = 'failed' ORDER BY id LIMIT ?",
            (limit,),
        )
        return [(entry(row[:4]), row[4] or "") for row in rows]

    async def retry(self, entry_id: int) -> bool:
        rows: list[Any] = await self._run(
            self._write,
            "UPDATE notifications SET state = 'pending', attempts = 0 "
            "WHERE id = ? AND state = 'failed' RETURNING id",
            (entry_id,),
        )
        return bool(rows)

    async def backlog(self, now: datetime) -> Backlog:
        rows: list[Any] = await self._run(
            self._read,
            "SELECT state, count(*), min(received_at) FROM notifications "
            "WHERE id NOT IN (SELECT value FROM json_each(?)) GROUP BY state",
            (self._queued(),),
        )
        return backlog_of(now, rows)

    async def close(self) -> None:
        await super().close()
        await self._run(self._close)
        self._thread.shutdown(wait=True)
