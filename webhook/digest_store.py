"""Digest items in the store: recorded with their alert, taken into one outbox message.

- `add_digest_items` runs inside the ingest transaction: one pending item per (alert,
  destination), unique, so a repeated notification never adds a second one.
- `DigestStore.flush` takes up to `max_alerts` pending items of one destination (oldest
  first) with a conditional UPDATE whose row selection uses `FOR UPDATE SKIP LOCKED` on
  PostgreSQL (SQLite serialises writers), renders them into one Slack message, enqueues it
  and links the items to it, all in ONE transaction: a crash leaves either nothing or both,
  and two replicas never list the same item.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from webhook.digest import digest_key, digest_message
from webhook.intake import NewDelivery, Plan
from webhook.outbox_store import SqlOutbox
from webhook.statements import alert_view, enqueue, insert, ts
from webhook.tables import alerts, deliveries, digest_items

NO_ALERT_ID = 0
"""`alert_id` of a digest's outbox row: it lists several alerts (the items point to it)."""


def digest_destinations(plan: Plan) -> list[str]:
    """The Slack destinations that collect this alert into a digest."""
    return [t.destination for t in plan.targets if t.type == "slack_digest"]


async def add_digest_items(
    conn: AsyncConnection, items: Sequence[tuple[int, str, datetime]]
) -> None:
    """Record (alert id, destination, received at) as pending; existing pairs stay as they are."""
    if not items:
        return
    values = [
        {"alert_id": alert_id, "destination": destination, "state": "pending", "created_at": ts(at)}
        for alert_id, destination, at in items
    ]
    await conn.execute(insert(conn)(digest_items).on_conflict_do_nothing(), values)


@dataclass(frozen=True)
class Pending:
    oldest: datetime
    count: int


@dataclass(frozen=True)
class Flushed:
    delivery_id: int | None
    alerts: int
    remaining: int


class DigestStore:
    def __init__(self, outbox: SqlOutbox) -> None:
        self.outbox = outbox

    async def pending(self) -> dict[str, Pending]:
        """Per destination: when its oldest pending item arrived and how many are pending."""
        query = (
            sa.select(
                digest_items.c.destination,
                sa.func.min(digest_items.c.created_at),
                sa.func.count(),
            )
            .where(digest_items.c.state == "pending")
            .group_by(digest_items.c.destination)
        )
        async with self.outbox.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {d: Pending(datetime.fromtimestamp(oldest, UTC), n) for d, oldest, n in rows}

    async def flush(
        self,
        destination: str,
        now: datetime,
        *,
        max_alerts: int,
        span_seconds: float,
        channel: str | None,
    ) -> Flushed | None:
        """Turn up to `max_alerts` pending items of `destination` into one outbox message
        (None when there were none left). The header covers `span_seconds`, or longer when
        the oldest item has waited longer."""
        async with self.outbox.writing() as conn:
            items = await _take(conn, destination, max_alerts, now)
            if not items:
                return None
            found = await conn.execute(
                sa.select(alerts).where(alerts.c.id.in_([alert_id for _, alert_id, _ in items]))
            )
            by_id = {row["id"]: dict(row) for row in found.mappings()}
            # Items are written with their alert; a missing alert (deleted by hand) is skipped.
            views = [alert_view(a, by_id[a], None) for _, a, _ in items if a in by_id]
            if not views:
                return Flushed(None, 0, 0)
            remaining = await _count_pending(conn, destination)
            oldest = min(created for _, _, created in items)
            message = digest_message(
                views,
                span_seconds=max(span_seconds, ts(now) - oldest),
                remaining=remaining,
                channel=channel,
            )
            key = digest_key(destination, [item_id for item_id, _, _ in items])
            delivery = NewDelivery("slack", destination, "digest", message, key)
            await enqueue(conn, [(NO_ALERT_ID, delivery)], now)
            delivery_id = (
                await conn.execute(
                    sa.select(deliveries.c.id).where(deliveries.c.idempotency_key == key)
                )
            ).scalar_one()
            await conn.execute(
                sa.update(digest_items)
                .where(digest_items.c.id.in_([item_id for item_id, _, _ in items]))
                .values(delivery_id=delivery_id)
            )
        return Flushed(delivery_id, len(views), remaining)

    async def items_of(self, delivery_id: int) -> list[int]:
        """Alert ids a digest message listed, oldest item first."""
        async with self.outbox.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(digest_items.c.alert_id)
                .where(digest_items.c.delivery_id == delivery_id)
                .order_by(digest_items.c.id)
            )
            return list(rows.scalars())


async def _take(
    conn: AsyncConnection, destination: str, limit: int, now: datetime
) -> list[tuple[int, int, float]]:
    """Mark the oldest `limit` pending items digested; (item id, alert id, created at).

    Two statements on purpose: PostgreSQL may re-run a `LIMIT ... SKIP LOCKED` subquery inside
    an UPDATE and so update more than `limit` rows. The locks taken by the SELECT are held
    until the transaction ends, so another replica skips these rows."""
    oldest = await conn.execute(
        sa.select(digest_items.c.id)
        .where(digest_items.c.destination == destination, digest_items.c.state == "pending")
        .order_by(digest_items.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers anyway
    )
    ids = list(oldest.scalars())
    if not ids:
        return []
    taken = await conn.execute(
        sa.update(digest_items)
        .where(digest_items.c.id.in_(ids), digest_items.c.state == "pending")
        .values(state="digested", digested_at=ts(now))
        .returning(digest_items.c.id, digest_items.c.alert_id, digest_items.c.created_at)
    )
    return sorted((item_id, alert_id, created) for item_id, alert_id, created in taken)


async def _count_pending(conn: AsyncConnection, destination: str) -> int:
    counted = await conn.execute(
        sa.select(sa.func.count()).where(
            digest_items.c.destination == destination, digest_items.c.state == "pending"
        )
    )
    return int(counted.scalar_one())
