"""Retention: what the webhook keeps, and for how long.

Closed alerts (resolved or stale) and finished deliveries (sent or dead) older than
`retention` are deleted, with the digest items and PagerDuty webhook ids of the same age, so the
state database stops growing with every alert ever received. Nothing still in play is touched:
firing alerts, pending deliveries and the alerts they render from are kept whatever their
age. Deletes go in bounded chunks, so one sweep never holds the writer for long.
"""

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from webhook.tables import alerts, deliveries, digest_items, pagerduty_webhooks

CHUNK = 2000
"""Rows deleted per table per sweep at most; a large backlog goes over several sweeps."""


@dataclass(frozen=True)
class Pruned:
    alerts: int = 0
    deliveries: int = 0


async def _delete_ids(conn: AsyncConnection, table: sa.Table, ids: sa.Select[tuple[int]]) -> int:
    found = list((await conn.execute(ids.limit(CHUNK))).scalars())
    if found:
        await conn.execute(sa.delete(table).where(table.c.id.in_(found)))
    return len(found)


async def prune(conn: AsyncConnection, cutoff: float) -> Pruned:
    """Delete what was finished before `cutoff` (epoch seconds)."""
    finished = await _delete_ids(
        conn,
        deliveries,
        sa.select(deliveries.c.id).where(
            deliveries.c.state.in_(("sent", "dead")), deliveries.c.updated_at < cutoff
        ),
    )
    still_needed = sa.or_(
        sa.exists().where(deliveries.c.alert_id == alerts.c.id),
        sa.exists().where(
            digest_items.c.alert_id == alerts.c.id, digest_items.c.state == "pending"
        ),
    )
    closed = await _delete_ids(
        conn,
        alerts,
        sa.select(alerts.c.id).where(
            alerts.c.state.in_(("resolved", "stale")),
            alerts.c.closed_at < cutoff,
            ~still_needed,
        ),
    )
    await _delete_ids(
        conn,
        digest_items,
        sa.select(digest_items.c.id).where(
            digest_items.c.state == "digested", digest_items.c.digested_at < cutoff
        ),
    )
    await conn.execute(
        sa.delete(pagerduty_webhooks).where(pagerduty_webhooks.c.received_at < cutoff)
    )
    return Pruned(alerts=closed, deliveries=finished)
