"""The deliveries outbox over SQLite or PostgreSQL: implements `webhook.outbox.Outbox`.

A claim is a lease (`lease_until`): the due ids are selected `FOR UPDATE SKIP LOCKED` on
PostgreSQL (SQLite serialises writers) and leased by an UPDATE of exactly those ids in the same
transaction, so several replicas never hold the same row. A row whose claimer died becomes
claimable again once its lease runs out; one that stops cleanly releases its leases at once.

Firing messages are stored as recipes (`webhook.intake.RENDER_LATER`) and rendered here, when
claimed or listed, from their alert rows.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tensafe_ops.log import get_logger
from webhook.intake import RENDER_LATER, render_firing
from webhook.outbox import OUTCOME_UNKNOWN, AlertView, Delivery, Takeover, Target
from webhook.statements import (
    ConflictError,
    NotFoundError,
    alert_view,
    reading,
    ts,
    window,
)
from webhook.tables import alerts, deliveries
from webhook.targets import DestinationsConfig
from webhook.timebounds import from_stored

log = get_logger("tensafe_ops.webhook.dispatch")


def claimable(target: Target, now: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    """Pending deliveries for `target` that are due and leased by no one."""
    return (
        deliveries.c.target == target,
        deliveries.c.state == "pending",
        deliveries.c.not_before <= ts(now),
        sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < ts(now)),
    )


async def give_up_unknown(
    conn: AsyncConnection, now: datetime, *where: sa.ColumnElement[bool]
) -> list[int]:
    """Deliveries left `sending` by a sender that is gone: dead-lettered, outcome unknown
    (their target cannot deduplicate a resend). Returns their ids."""
    gone = await conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.state == "sending", *where)
        .values(
            state="dead",
            last_error=OUTCOME_UNKNOWN,
            attempts=deliveries.c.attempts + 1,
            lease_until=None,
            updated_at=ts(now),
        )
        .returning(deliveries.c.id)
    )
    ids = list(gone.scalars())
    if ids:
        log.warning("delivery_outcome_unknown", deliveries=ids)
    return ids


class SqlOutbox:
    def __init__(self, engine: AsyncEngine, destinations: DestinationsConfig) -> None:
        self.engine = engine
        self.destinations = destinations
        # SQLite has one writer at a time; queueing writers here is much faster than letting
        # them poll SQLite's busy lock (one process per SQLite file: replicas need PostgreSQL).
        self._sqlite_writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._finishing: list[tuple[int, dict[str, Any], asyncio.Future[None]]] = []
        self._finisher: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (committed on exit)."""
        async with contextlib.AsyncExitStack() as stack:
            if self._sqlite_writer is not None:
                await stack.enter_async_context(self._sqlite_writer)
            yield await stack.enter_async_context(self.engine.begin())

    async def claim(
        self,
        target: Target,
        limit: int,
        now: datetime,
        lease_seconds: float,
        destination: str | None = None,
    ) -> list[Delivery]:
        conditions = claimable(target, now)
        if destination is not None:
            conditions += (deliveries.c.destination == destination,)
        due = (
            sa.select(deliveries.c.id)
            .where(*conditions)
            .order_by(deliveries.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers anyway
        )
        async with self.writing() as conn:
            # Two statements, not `UPDATE ... WHERE id IN (SELECT ... LIMIT n)`: PostgreSQL
            # may evaluate that subquery more than once and lease more than `limit` rows.
            # The locked ids are fixed here; the UPDATE repeats the conditions so a
            # row another claimer leased meanwhile (possible on SQLite, which has no row
            # locks) is not leased twice.
            ids = list((await conn.execute(due)).scalars())
            if not ids:
                return []
            leased = await conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id.in_(ids), *conditions)
                .values(lease_until=ts(now) + lease_seconds, updated_at=ts(now))
                .returning(*deliveries.c)
            )
            rows = [dict(r) for r in leased.mappings()]
            views = await self._stored_alerts(conn, rows)
        payloads = self._render(rows, views)  # outside the transaction: writers wait less
        claimed = [
            Delivery(
                id=r["id"],
                target=r["target"],
                destination=r["destination"],
                payload=payload,
                idempotency_key=r["idempotency_key"],
                attempts=r["attempts"],
                created_at=datetime.fromtimestamp(r["created_at"], UTC),
                claimed_until=datetime.fromtimestamp(r["lease_until"], UTC),
            )
            for r, payload in zip(rows, payloads, strict=True)
        ]
        return sorted(claimed, key=lambda d: d.id)

    async def _stored_alerts(
        self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]
    ) -> dict[int, AlertView]:
        """The alerts of the rows whose payload is a recipe, to render them from."""
        # A text search (the JSON is parsed once, in _render): a rendered body that merely
        # contains the word costs one extra alert read, nothing else.
        wanted = {r["alert_id"] for r in rows if RENDER_LATER in r["payload"]}
        if not wanted:
            return {}
        found = await conn.execute(sa.select(alerts).where(alerts.c.id.in_(wanted)))
        return {a["id"]: alert_view(a["id"], dict(a), None) for a in found.mappings()}

    def _render(
        self, rows: Sequence[Mapping[str, Any]], views: Mapping[int, AlertView]
    ) -> list[dict[str, Any]]:
        """The request bodies of outbox rows, recipes rendered. (Alert rows are never deleted;
        a recipe without one would stay as it is, be refused by the API and dead-lettered.)"""
        payloads: list[dict[str, Any]] = []
        for row in rows:
            payload = json.loads(row["payload"])
            view = views.get(row["alert_id"])
            if RENDER_LATER in payload and view is not None:
                payload = render_firing(payload, row["destination"], view, self.destinations)
            payloads.append(payload)
        return payloads

    async def mark_sent(self, delivery_id: int, now: datetime, status: int) -> None:
        await self._finish(delivery_id, now, state="sent", sent_at=ts(now), last_status=status)

    async def mark_retry(
        self,
        delivery_id: int,
        now: datetime,
        not_before: datetime,
        error: str,
        status: int | None = None,
    ) -> None:
        await self._finish(
            delivery_id,
            now,
            state="pending",
            not_before=ts(not_before),
            last_error=error,
            last_status=status,
        )

    async def mark_dead(
        self, delivery_id: int, now: datetime, error: str, status: int | None = None
    ) -> None:
        await self._finish(delivery_id, now, state="dead", last_error=error, last_status=status)

    async def release(self, delivery_ids: Sequence[int], now: datetime) -> None:
        if not delivery_ids:
            return
        async with self.writing() as conn:
            await conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id.in_(delivery_ids), deliveries.c.state == "pending")
                .values(lease_until=ts(now), updated_at=ts(now))
            )

    async def due_destinations(self, target: Target, now: datetime) -> list[str]:
        query = (
            sa.select(deliveries.c.destination)
            .where(
                deliveries.c.target == target,
                deliveries.c.state == "pending",
                deliveries.c.not_before <= ts(now),
            )
            .distinct()
            .order_by(deliveries.c.destination)
        )
        async with reading(self.engine) as conn:
            return list((await conn.execute(query)).scalars())

    async def start_sending(self, delivery: Delivery, now: datetime) -> bool:
        if delivery.claimed_until is None:
            return False
        async with self.writing() as conn:
            started = await conn.execute(
                sa.update(deliveries)
                .where(
                    deliveries.c.id == delivery.id,
                    deliveries.c.state == "pending",
                    deliveries.c.lease_until == ts(delivery.claimed_until),
                )
                .values(state="sending", updated_at=ts(now))
                .returning(deliveries.c.id)
            )
            return started.scalar_one_or_none() is not None

    async def take_over(self, target: Target, destination: str, now: datetime) -> Takeover:
        async with self.writing() as conn:
            last = await conn.execute(
                sa.select(sa.func.max(deliveries.c.updated_at)).where(
                    deliveries.c.target == target,
                    deliveries.c.destination == destination,
                    deliveries.c.attempts > 0,
                )
            )
            last_attempt = last.scalar_one_or_none()
            await give_up_unknown(
                conn,
                now,
                deliveries.c.target == target,
                deliveries.c.destination == destination,
            )
            released = await conn.execute(
                sa.update(deliveries)
                .where(
                    deliveries.c.target == target,
                    deliveries.c.destination == destination,
                    deliveries.c.state == "pending",
                    deliveries.c.lease_until > ts(now),
                )
                .values(lease_until=None, updated_at=ts(now))
            )
        last = None if last_attempt is None else from_stored(last_attempt)
        return Takeover(int(released.rowcount), last)

    async def _finish(self, delivery_id: int, now: datetime, **values: Any) -> None:
        """Record an attempt's outcome. Outcomes recorded at the same time share one
        transaction (group commit, no timer): one commit, one fsync on SQLite, however
        many destinations are draining. The write belongs to the commit task: a cancelled
        caller stops waiting for it, the outcome is still recorded."""
        values = {
            "attempts": deliveries.c.attempts + 1,
            "lease_until": None,
            "updated_at": ts(now),
            **values,
        }
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finishing.append((delivery_id, values, future))
        if self._finisher is None or self._finisher.done():
            self._finisher = asyncio.create_task(self._finish_waiting(), name="outbox-finish")
        await future

    async def _finish_waiting(self) -> None:
        while self._finishing:
            batch, self._finishing = self._finishing, []
            try:
                async with self.writing() as conn:
                    for delivery_id, values, _ in batch:
                        await conn.execute(
                            sa.update(deliveries)
                            .where(deliveries.c.id == delivery_id)
                            .values(**values)
                        )
            except Exception as exc:  # every waiter learns; the rows keep their leases
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def list_deliveries(
        self,
        state: str | None,
        limit: int,
        *,
        before: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; `before`: ids below it (a page's cursor); `since`/`until`: created
        in [since, until)."""
        query = sa.select(deliveries).order_by(deliveries.c.id.desc()).limit(limit)
        query = query.where(*window(deliveries, deliveries.c.created_at, before, since, until))
        if state is not None:
            query = query.where(deliveries.c.state == state)
        async with self.engine.connect() as conn:
            rows = [dict(r) for r in (await conn.execute(query)).mappings()]
            views = await self._stored_alerts(conn, rows)
        for row, payload in zip(rows, self._render(rows, views), strict=True):
            row["payload"] = json.dumps(payload)  # what is (or will be) sent
        return rows

    async def retry_delivery(self, delivery_id: int, now: datetime) -> dict[str, Any]:
        """Put a dead letter back in the outbox, due now."""
        async with self.writing() as conn:
            row = (
                (
                    await conn.execute(
                        sa.update(deliveries)
                        .where(deliveries.c.id == delivery_id, deliveries.c.state == "dead")
                        .values(
                            state="pending",
                            not_before=ts(now),
                            lease_until=None,
                            updated_at=ts(now),
                        )
                        .returning(*deliveries.c)
                    )
                )
                .mappings()
                .one_or_none()
            )
            if row is not None:
                retried = dict(row)
                views = await self._stored_alerts(conn, [retried])
                retried["payload"] = json.dumps(self._render([retried], views)[0])
                return retried
            exists = await conn.execute(
                sa.select(deliveries.c.state).where(deliveries.c.id == delivery_id)
            )
            state = exists.scalar_one_or_none()
        if state is None:
            raise NotFoundError(f"no delivery {delivery_id}")
        raise ConflictError(
            f"delivery {delivery_id} is {state}, only dead deliveries can be retried"
        )
