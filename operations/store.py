"""The operator part's state: one row per UTC day (morning numbers, the day's record, whether
its summary was posted), checklist marks (who did which step when) and planned events.

The day's summary is posted once across replicas by the outbox's idempotency key (one
delivery per day whoever queues it); `posted_at` is marked after it is queued, so a pass that
failed to queue it is retried; a record stored again simply replaces the earlier one.
"""

import asyncio
import functools
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from operations.tables import daily, events, marks
from tensafe_ops.storage import within

EVENT_KINDS = ("maintenance", "demo", "onboarding", "campaign", "spike", "other")
P = ParamSpec("P")
T = TypeVar("T")


def ts(moment: datetime) -> float:
    return moment.timestamp()


def iso(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


def _insert(conn: AsyncConnection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


@dataclass(frozen=True)
class DayRow:
    day: str
    morning: dict[str, Any] | None
    morning_at: float | None
    record: dict[str, Any] | None
    recorded_at: float | None
    posted_at: float | None


def _day_row(row: Any) -> DayRow:
    return DayRow(
        day=row["day"],
        morning=None if row["morning"] is None else json.loads(row["morning"]),
        morning_at=row["morning_at"],
        record=None if row["record"] is None else json.loads(row["record"]),
        recorded_at=row["recorded_at"],
        posted_at=row["posted_at"],
    )


def event_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "start": iso(row["starts_at"]),
        "end": iso(row["ends_at"]),
        "kind": row["kind"],
        "note": row["note"],
        "communicated": bool(row["communicated"]),
        "by": row["created_by"],
        "created_at": iso(row["created_at"]),
    }


def mark_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "day": row["day"],
        "step": row["step"],
        "by": row["by"],
        "note": row["note"],
        "at": iso(row["at"]),
    }


def bounded(
    call: "Callable[Concatenate[OperatorStore, P], Coroutine[Any, Any, T]]",
) -> "Callable[Concatenate[OperatorStore, P], Coroutine[Any, Any, T]]":
    """A store method waited for at most the store's `timeout` (then TimeoutError, which the
    API answers 503), even on a database that accepts connections and never answers: the call
    runs in a task of its own, left to finish when it can (`tensafe_ops.storage.within`)."""

    @functools.wraps(call)
    async def bounded_call(store: "OperatorStore", /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await within(call(store, *args, **kwargs), store.timeout, store.pending)

    return bounded_call


class OperatorStore:
    def __init__(self, engine: AsyncEngine, timeout: float = 10.0) -> None:
        self.engine = engine
        self.timeout = timeout
        self.pending: set[asyncio.Task[Any]] = set()
        """Calls still running after their caller stopped waiting; shutdown waits for them."""

    # -- daily records -----------------------------------------------------------------------

    @bounded
    async def day(self, day: date) -> DayRow | None:
        async with self.engine.connect() as conn:
            found = await conn.execute(sa.select(daily).where(daily.c.day == day.isoformat()))
            row = found.mappings().one_or_none()
        return None if row is None else _day_row(row)

    @bounded
    async def days(self, first: date, last: date) -> list[DayRow]:
        query = (
            sa.select(daily)
            .where(daily.c.day >= first.isoformat(), daily.c.day <= last.isoformat())
            .order_by(daily.c.day)
        )
        async with self.engine.connect() as conn:
            return [_day_row(r) for r in (await conn.execute(query)).mappings()]

    async def _ensure_day(self, conn: AsyncConnection, day: date) -> None:
        stmt = _insert(conn)(daily).values(day=day.isoformat()).on_conflict_do_nothing()
        await conn.execute(stmt)

    @bounded
    async def save_morning(
        self, day: date, numbers: dict[str, Any], now: datetime, *, replace: bool
    ) -> bool:
        """Store the morning numbers; without `replace`, only if none are stored yet (True
        when this call stored them)."""
        return await self._save(day, daily.c.morning, daily.c.morning_at, numbers, now, replace)

    @bounded
    async def save_record(
        self, day: date, record: dict[str, Any], now: datetime, *, replace: bool
    ) -> bool:
        return await self._save(day, daily.c.record, daily.c.recorded_at, record, now, replace)

    async def _save(
        self,
        day: date,
        column: sa.Column[Any],
        at_column: sa.Column[Any],
        value: dict[str, Any],
        now: datetime,
        replace: bool,
    ) -> bool:
        async with self.engine.begin() as conn:
            await self._ensure_day(conn, day)
            query = sa.update(daily).where(daily.c.day == day.isoformat())
            if not replace:
                query = query.where(column.is_(None))
            values = {column.name: json.dumps(value), at_column.name: ts(now)}
            done = await conn.execute(query.values(values).returning(daily.c.day))
            return done.scalar_one_or_none() is not None

    @bounded
    async def mark_posted(self, day: date, now: datetime) -> None:
        """The day's summary is queued (the first mark stays: when it was first queued)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(daily)
                .where(daily.c.day == day.isoformat(), daily.c.posted_at.is_(None))
                .values(posted_at=ts(now))
            )

    # -- checklist marks -----------------------------------------------------------------------

    @bounded
    async def add_mark(
        self, day: date, step: str, by: str, note: str, now: datetime
    ) -> dict[str, Any]:
        values = {"day": day.isoformat(), "step": step, "by": by, "note": note, "at": ts(now)}
        async with self.engine.begin() as conn:
            added = await conn.execute(sa.insert(marks).values(values).returning(*marks.c))
            return mark_json(added.mappings().one())

    @bounded
    async def marks(self, day: date) -> list[dict[str, Any]]:
        query = sa.select(marks).where(marks.c.day == day.isoformat()).order_by(marks.c.id)
        async with self.engine.connect() as conn:
            return [mark_json(r) for r in (await conn.execute(query)).mappings()]

    # -- planned events ------------------------------------------------------------------------

    @bounded
    async def add_event(
        self,
        start: datetime,
        end: datetime,
        kind: str,
        note: str,
        communicated: bool,
        by: str,
        now: datetime,
    ) -> dict[str, Any]:
        values = {
            "starts_at": ts(start),
            "ends_at": ts(end),
            "kind": kind,
            "note": note,
            "communicated": communicated,
            "created_by": by,
            "created_at": ts(now),
        }
        async with self.engine.begin() as conn:
            added = await conn.execute(sa.insert(events).values(values).returning(*events.c))
            return event_json(added.mappings().one())

    @bounded
    async def events(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Events overlapping [start, end), by start time."""
        query = (
            sa.select(events)
            .where(events.c.starts_at < ts(end), events.c.ends_at > ts(start))
            .order_by(events.c.starts_at, events.c.id)
        )
        async with self.engine.connect() as conn:
            return [event_json(r) for r in (await conn.execute(query)).mappings()]

    @bounded
    async def update_event(self, event_id: int, communicated: bool) -> dict[str, Any] | None:
        async with self.engine.begin() as conn:
            done = await conn.execute(
                sa.update(events)
                .where(events.c.id == event_id)
                .values(communicated=communicated)
                .returning(*events.c)
            )
            row = done.mappings().one_or_none()
        return None if row is None else event_json(row)

    @bounded
    async def remove_event(self, event_id: int) -> bool:
        async with self.engine.begin() as conn:
            done = await conn.execute(
                sa.delete(events).where(events.c.id == event_id).returning(events.c.id)
            )
            return done.scalar_one_or_none() is not None

    # -- retention -----------------------------------------------------------------------------

    @bounded
    async def prune(self, today: date, keep_days: int) -> int:
        """Delete days, marks and ended events older than `keep_days` days. Returns the number
        of days deleted."""
        first_kept = today - timedelta(days=keep_days)
        cutoff = datetime.combine(first_kept, datetime.min.time(), tzinfo=UTC)
        async with self.engine.begin() as conn:
            gone = await conn.execute(
                sa.delete(daily).where(daily.c.day < first_kept.isoformat()).returning(daily.c.day)
            )
            await conn.execute(sa.delete(marks).where(marks.c.day < first_kept.isoformat()))
            await conn.execute(sa.delete(events).where(events.c.ends_at < ts(cutoff)))
            return len(gone.all())
