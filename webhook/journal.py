"""The notification journal: what the receiver stores before it answers 2xx.

Accepting a notification is one INSERT of its body (validated, as received), committed before
the answer; everything it causes (alert records, outbox rows) is derived afterwards by
`webhook.ingest`, which swaps journal entries for their effects atomically. So a 2xx is as
durable as before, but costs one small row instead of ~30 rows of routing work, and a burst is
absorbed at the rate the database can append.

Concurrent notifications share a transaction (group commit): whatever waits when a commit ends
goes into the next one, with no timer, so a lone notification is never delayed.

A database that hangs must not make the process hold bodies without bound: `waiting_bytes`
counts the bodies appended and not yet committed (the receiver answers 503 without reading a
body once it passes its budget); a body whose handler stopped waiting before its commit began
is dropped (it was answered 503, so the sender sends it again); and an append not committed
within `timeout` fails at once, while the next commit waits for the stuck one to end, so a hung
database holds one connection and one batch, not one per batch. The journal keeps that deadline
itself, with one timer for all appends (they expire in the order they came), instead of a
timer per request: at thousands of notifications a second the per-request timers were a
measurable share of the receiver's time (bench/README.md).

Two backends, one contract:
- `SqlJournal` (PostgreSQL, or an in-memory SQLite): the `webhook_notifications` table of the
  state database; the ingest transaction claims entries by deleting them.
- `SqliteFileJournal` (`webhook.journal_sqlite`, the default with a SQLite file): a database
  file of its own, so appends never wait for the state database's single writer.
"""

import asyncio
import itertools
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tensafe_ops.log import get_logger
from webhook.bulk import insert_rows, insert_rows_alone
from webhook.statements import reading
from webhook.tables import notifications

log = get_logger("tensafe_ops.webhook")

GROUP_COMMIT_MAX = 256
"""Notifications appended in one transaction at most (the rest wait for the next one)."""
ERROR_MAX = 2000

Writer = Callable[[], AbstractAsyncContextManager[AsyncConnection]]
Row = tuple[float, str]
"""(received_at epoch seconds, body) of a notification to append."""


@dataclass(frozen=True)
class Entry:
    id: int
    received_at: datetime
    body: str
    attempts: int


@dataclass(frozen=True)
class Backlog:
    read_at: datetime
    pending: int
    failed: int
    oldest_received_at: datetime | None


def _fail(batch: Sequence[tuple["asyncio.Future[int]", Row]], exc: BaseException) -> None:
    for future, _ in batch:
        if not future.done():
            future.set_exception(exc)


def entry(row: Sequence[Any]) -> Entry:
    entry_id, received_at, body, attempts = row
    return Entry(entry_id, datetime.fromtimestamp(received_at, UTC), body, attempts)


def backlog_of(now: datetime, counts: Sequence[Sequence[Any]]) -> Backlog:
    """From rows of (state, count, oldest received_at)."""
    by_state = {state: (n, oldest) for state, n, oldest in counts}
    pending, oldest = by_state.get("pending", (0, None))
    return Backlog(
        read_at=now,
        pending=pending,
        failed=by_state.get("failed", (0, None))[0],
        oldest_received_at=None if oldest is None else datetime.fromtimestamp(oldest, UTC),
    )


class Journal(ABC):
    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        """Seconds an append may wait for its commit before it fails (the receiver's 503)."""
        self._waiting: dict[asyncio.Future[int], Row] = {}
        self._committer: asyncio.Task[None] | None = None
        self._deadlines: deque[tuple[float, asyncio.Future[int]]] = deque()
        """Every append not known to be done, oldest first, with the loop time it expires."""
        self._watchdog: asyncio.TimerHandle | None = None
        self.appended = asyncio.Event()
        """Set after every commit that appended something: the ingester's wake-up."""
        self.waiting_bytes = 0
        """Characters of the bodies appended and not yet committed or given up on (what a
        hung database makes the process hold)."""

    def append(self, body: str, received_at: datetime) -> "asyncio.Future[int]":
        """Store a notification: the future gives its journal id once committed. Once its
        commit has begun the write belongs to the commit task: cancelling the future (the
        client went away, the handler timed out) no longer takes the notification out. Before
        that, a cancelled future drops it: its sender got no 2xx and sends it again."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._waiting[future] = (received_at.timestamp(), body)
        self.waiting_bytes += len(body)
        future.add_done_callback(self._drop_unwanted)
        self._deadlines.append((loop.time() + self.timeout, future))
        if self._watchdog is None:
            self._watchdog = loop.call_at(self._deadlines[0][0], self._expire)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_waiting(), name="journal-commit")
        return future

    def _drop_unwanted(self, future: "asyncio.Future[int]") -> None:
        row = self._waiting.pop(future, None)  # None once its commit began
        if row is not None:
            self.waiting_bytes -= len(row[1])

    def _expire(self) -> None:
        """Fail the appends whose commit has not ended within `timeout`. One waiting for a
        commit to begin is dropped (`_drop_unwanted`); one in a commit stays in it (if that
        commits after all, the sender's retry is a duplicate, which ingest ignores)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        expired = 0
        while self._deadlines and (self._deadlines[0][1].done() or self._deadlines[0][0] <= now):
            _, future = self._deadlines.popleft()
            if not future.done():
                future.set_exception(TimeoutError(f"not stored within {self.timeout} s"))
                expired += 1
        if expired:
            log.warning("journal_commit_stuck", notifications=expired, after=self.timeout)
        self._watchdog = None
        if self._deadlines:
            self._watchdog = loop.call_at(self._deadlines[0][0], self._expire)

    def _forget_done(self) -> None:
        """Drop finished appends from the front of `_deadlines` (commits end in order)."""
        while self._deadlines and self._deadlines[0][1].done():
            self._deadlines.popleft()

    async def _commit_waiting(self) -> None:
        while self._waiting:
            batch = list(itertools.islice(self._waiting.items(), GROUP_COMMIT_MAX))
            for future, _ in batch:
                del self._waiting[future]
            size = sum(len(body) for _, (_, body) in batch)
            try:
                await self._commit(batch)
            finally:
                self.waiting_bytes -= size

    async def _commit(self, batch: list[tuple["asyncio.Future[int]", Row]]) -> None:
        # Not bounded here: `_expire` fails the waiters of a commit that hangs, and nothing
        # else is written until it ends (one stuck connection, one batch held).
        try:
            ids = await self._insert([row for _, row in batch])
        except asyncio.CancelledError:
            for future, _ in batch:
                future.cancel()
            raise
        except Exception as exc:  # the transaction failed: every waiter gets a 503
            _fail(batch, exc)
        else:
            for (future, _), journal_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(journal_id)
            self.appended.set()
        self._forget_done()

    async def flush(self) -> None:
        """Wait until everything appended so far is committed (shutdown), or the database
        has not answered for `timeout` (those senders got a 503 and will send again)."""
        if self._committer is not None and not self._committer.done():
            await asyncio.wait([self._committer], timeout=self.timeout * 2)

    async def tidy(self) -> None:
        """Wait until the entries `forget` was given are gone (tests, shutdown). Here they
        are at once: `claim` deleted them in the ingest transaction."""
        return None

    async def close(self) -> None:
        await self.flush()
        await self.tidy()
        self._stop_watchdog()

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    @abstractmethod
    async def _insert(self, rows: Sequence[Row]) -> list[int]:
        """Append in one transaction; the new ids, in order."""

    @abstractmethod
    async def pending(self, limit: int) -> list[Entry]:
        """The oldest pending entries (no write lock taken; `claim` decides)."""

    @abstractmethod
    async def claim(self, conn: AsyncConnection, entry_ids: Sequence[int]) -> set[int]:
        """Inside the ingest transaction on the state database: take the entries nobody has
        applied yet; the caller applies exactly those. If that transaction rolls back, they
        were never taken."""

    @abstractmethod
    async def forget(self, handled: set[int]) -> None:
        """After the ingest transaction committed: drop the entries of the batch, if `claim`
        did not already."""

    @abstractmethod
    async def set_aside(self, entry_id: int, error: str) -> None:
        """An entry that can never be ingested: kept as `failed`, for a human."""

    @abstractmethod
    async def record_failure(self, entry_id: int, error: str, give_up_after: int) -> bool:
        """Count a failed ingest of one entry; after `give_up_after` attempts it is set aside
        as `failed`. True when it was set aside now."""

    @abstractmethod
    async def failed(self, limit: int) -> list[tuple[Entry, str]]:
        """Entries set aside, with their last error, oldest first."""

    @abstractmethod
    async def retry(self, entry_id: int) -> bool:
        """Put an entry set aside back in line (attempts from zero). False when there is no
        failed entry with that id. Safe: a failed entry was never applied."""

    @abstractmethod
    async def backlog(self, now: datetime) -> Backlog: ...


class SqlJournal(Journal):
    """The `webhook_notifications` table of the state database (PostgreSQL: shared by every
    replica; a claim deletes the rows, and another replica's claim of the same rows waits for
    that transaction and then finds them gone)."""

    def __init__(self, engine: AsyncEngine, writing: Writer, timeout: float = 10.0) -> None:
        super().__init__(timeout)
        self.engine = engine
        self.writing = writing

    async def _insert(self, rows: Sequence[Row]) -> list[int]:
        values = [
            {"received_at": at, "body": body, "state": "pending", "attempts": 0}
            for at, body in rows
        ]
        if self.engine.dialect.name == "postgresql":
            inserted = await insert_rows_alone(self.engine, notifications, values, ("id",))
            return sorted(journal_id for (journal_id,) in inserted)
        async with self.writing() as conn:  # in-memory SQLite: the state database's writer
            inserted = await insert_rows(conn, notifications, values, ("id",), skip_conflicts=False)
        # One INSERT: the ids were generated in the order of the rows.
        return sorted(journal_id for (journal_id,) in inserted)

    async def _oldest(self, state: str, limit: int) -> list[tuple[Entry, str]]:
        """The oldest entries in `state`, with their last error."""
        query = (
            sa.select(
                notifications.c.id,
                notifications.c.received_at,
                notifications.c.body,
                notifications.c.attempts,
                notifications.c.last_error,
            )
            .where(notifications.c.state == state)
            .order_by(notifications.c.id)
            .limit(limit)
        )
        async with reading(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [(entry(row[:4]), row[4] or "") for row in rows]

    async def pending(self, limit: int) -> list[Entry]:
        return [found for found, _ in await self._oldest("pending", limit)]

    async def claim(self, conn: AsyncConnection, entry_ids: Sequence[int]) -> set[int]:
        if not entry_ids:
            return set()
        deleted = await conn.execute(
            sa.delete(notifications)
            .where(notifications.c.id.in_(entry_ids), notifications.c.state == "pending")
            .returning(notifications.c.id)
        )
        return set(deleted.scalars())

    async def forget(self, handled: set[int]) -> None:
        """Nothing to do: `claim` deleted them in the ingest transaction."""

    async def set_aside(self, entry_id: int, error: str) -> None:
        async with self.writing() as conn:
            await conn.execute(
                sa.update(notifications)
                .where(notifications.c.id == entry_id)
                .values(
                    state="failed",
                    last_error=error[:ERROR_MAX],
                    attempts=notifications.c.attempts + 1,
                )
            )

    async def record_failure(self, entry_id: int, error: str, give_up_after: int) -> bool:
        async with self.writing() as conn:
            updated = await conn.execute(
                sa.update(notifications)
                .where(notifications.c.id == entry_id, notifications.c.state == "pending")
                .values(
                    attempts=notifications.c.attempts + 1,
                    last_error=error[:ERROR_MAX],
                    state=sa.case(
                        (notifications.c.attempts + 1 >= give_up_after, "failed"),
                        else_="pending",
                    ),
                )
                .returning(notifications.c.state)
            )
            state: str | None = updated.scalar_one_or_none()
            return state == "failed"

    async def failed(self, limit: int) -> list[tuple[Entry, str]]:
        return await self._oldest("failed", limit)

    async def retry(self, entry_id: int) -> bool:
        async with self.writing() as conn:
            updated = await conn.execute(
                sa.update(notifications)
                .where(notifications.c.id == entry_id, notifications.c.state == "failed")
                .values(state="pending", attempts=0)
                .returning(notifications.c.id)
            )
            return updated.scalar_one_or_none() is not None

    async def backlog(self, now: datetime) -> Backlog:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(
                    notifications.c.state,
                    sa.func.count(),
                    sa.func.min(notifications.c.received_at),
                ).group_by(notifications.c.state)
            )
            return backlog_of(now, rows.all())


def open_journal(engine: AsyncEngine, writing: Writer, timeout: float = 10.0) -> Journal:
    """A journal file next to a SQLite state database file; the state database's own table
    otherwise (PostgreSQL, in-memory SQLite). `timeout`: see `Journal.timeout`."""
    from webhook.journal_sqlite import SqliteFileJournal, journal_path

    path = journal_path(engine)
    if path is None:
        return SqlJournal(engine, writing, timeout)
    return SqliteFileJournal(path, writing, timeout)
