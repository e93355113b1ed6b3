"""The notification journal: what the receiver stores before it answers 2xx.

Accepting a notification is one INSERT of its body (validated, as received) into
`webhook_notifications`, committed before the answer; everything it causes (alert records,
dedupe keys, outbox rows) is derived afterwards by `webhook.ingest`, in the transaction that
deletes the journal row. So a 2xx is as durable as before, but costs one small row instead of
~40 rows of routing work, and a burst is absorbed at the rate the database can append.

Concurrent notifications share a transaction (group commit): whatever waits when a commit ends
goes into the next one, with no timer, so a lone notification is never delayed.
"""

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from webhook.tables import notifications

GROUP_COMMIT_MAX = 256
"""Notifications appended in one transaction at most (the rest wait for the next one)."""

Writer = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


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


class Journal:
    def __init__(self, engine: AsyncEngine, writing: Writer) -> None:
        self.engine = engine
        self.writing = writing
        self._waiting: list[tuple[dict[str, object], asyncio.Future[int]]] = []
        self._committer: asyncio.Task[None] | None = None
        self.appended = asyncio.Event()
        """Set after every commit that appended something: the ingester's wake-up."""

    def append(self, body: str, received_at: datetime) -> "asyncio.Future[int]":
        """Store a notification: the future gives its journal id once committed. The write
        belongs to the commit task: cancelling the future (the client went away, the handler
        timed out) does not take the notification out of the batch being committed."""
        row: dict[str, object] = {
            "received_at": received_at.timestamp(),
            "body": body,
            "state": "pending",
            "attempts": 0,
        }
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_waiting(), name="journal-commit")
        return future

    async def _commit_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[:GROUP_COMMIT_MAX]
            del self._waiting[:GROUP_COMMIT_MAX]
            try:
                ids = await self._insert([row for row, _ in batch])
            except Exception as exc:  # the transaction failed: every waiter gets a 503
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            for (_, future), journal_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(journal_id)
            self.appended.set()

    async def flush(self) -> None:
        """Wait until everything appended so far is committed (shutdown)."""
        while self._committer is not None and not self._committer.done():
            await asyncio.wait([self._committer])

    async def _insert(self, rows: Sequence[dict[str, object]]) -> list[int]:
        stmt = sa.insert(notifications).returning(notifications.c.id, sort_by_parameter_order=True)
        async with self.writing() as conn:
            return list((await conn.execute(stmt, list(rows))).scalars())

    async def pending(self, limit: int) -> list[Entry]:
        """The oldest pending entries (read without a write lock; `claim` decides)."""
        query = (
            sa.select(
                notifications.c.id,
                notifications.c.received_at,
                notifications.c.body,
                notifications.c.attempts,
            )
            .where(notifications.c.state == "pending")
            .order_by(notifications.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Entry(i, datetime.fromtimestamp(at, UTC), body, n) for i, at, body, n in rows]

    async def record_failure(self, entry_id: int, error: str, give_up_after: int) -> bool:
        """Count a failed ingest of one entry; after `give_up_after` attempts it is set aside
        as `failed` (kept, never deleted). True when it was set aside now."""
        async with self.writing() as conn:
            updated = await conn.execute(
                sa.update(notifications)
                .where(notifications.c.id == entry_id, notifications.c.state == "pending")
                .values(
                    attempts=notifications.c.attempts + 1,
                    last_error=error[:2000],
                    state=sa.case(
                        (notifications.c.attempts + 1 >= give_up_after, "failed"),
                        else_="pending",
                    ),
                )
                .returning(notifications.c.state)
            )
            state: str | None = updated.scalar_one_or_none()
            return state == "failed"

    async def backlog(self, now: datetime) -> Backlog:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(
                    notifications.c.state,
                    sa.func.count(),
                    sa.func.min(notifications.c.received_at),
                ).group_by(notifications.c.state)
            )
            by_state = {state: (n, oldest) for state, n, oldest in rows}
        pending, oldest = by_state.get("pending", (0, None))
        return Backlog(
            read_at=now,
            pending=pending,
            failed=by_state.get("failed", (0, None))[0],
            oldest_received_at=None if oldest is None else datetime.fromtimestamp(oldest, UTC),
        )


async def claim(conn: AsyncConnection, entry_ids: Sequence[int]) -> set[int]:
    """Inside the ingest transaction: delete the entries that are still pending and return
    their ids; the caller applies exactly those. An entry another replica ingested meanwhile
    is gone (or locked until that replica commits, then gone), so it is never applied twice;
    if the transaction rolls back, the entries are pending again."""
    if not entry_ids:
        return set()
    deleted = await conn.execute(
        sa.delete(notifications)
        .where(notifications.c.id.in_(entry_ids), notifications.c.state == "pending")
        .returning(notifications.c.id)
    )
    return set(deleted.scalars())


async def set_aside(conn: AsyncConnection, entry_id: int, error: str) -> None:
    """An entry that can never be ingested (its body no longer parses): kept as `failed`."""
    await conn.execute(
        sa.update(notifications)
        .where(notifications.c.id == entry_id)
        .values(state="failed", last_error=error[:2000], attempts=notifications.c.attempts + 1)
    )
