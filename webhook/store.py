"""Durable webhook state over SQLite or PostgreSQL (SQLAlchemy Core, async).

`apply` writes what a batch of journaled notifications causes — alerts and the deliveries
they cause (the outbox) — in the ingest transaction that removes them from the journal
(`webhook.journal`, `webhook.ingest`). Idempotency comes from unique keys, not from locks in
this process, so it holds across replicas sharing one PostgreSQL database:
- `webhook_alerts` (fingerprint, startsAt): one record per alert occurrence; a firing alert
  whose occurrence exists is a duplicate and changes nothing but its last-seen time, a
  resolved one is applied by the conditional UPDATE that closes the record, at most once;
- `webhook_deliveries.idempotency_key`: one outbox row per occurrence, destination and kind.
Every state change that feeds a counter (breach, ack, stale close) is a conditional UPDATE ...
RETURNING, so exactly one replica observes it.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tensafe_ops.log import get_logger
from webhook.digest_store import add_digest_items, digest_destinations
from webhook.intake import (
    NewDelivery,
    Plan,
    Policy,
    firing_deliveries,
    micros,
    plan_alert,
    resolved_deliveries,
)
from webhook.outbox import Target
from webhook.outbox_store import SqlOutbox, give_up_unknown
from webhook.payload import Alert, Notification
from webhook.retention import Pruned, prune
from webhook.routing import Window
from webhook.statements import (
    AckResult,
    ConflictError,
    NotFoundError,
    acknowledge,
    active_windows,
    alert_row,
    alert_view,
    enqueue,
    insert,
    insert_alerts,
    mark_breached,
    notified_targets,
    occurrence_key,
    received_view,
    touch,
    ts,
    window,
)
from webhook.tables import alerts, deliveries, maintenance, pagerduty_webhooks, seen

__all__ = ["AckResult", "ConflictError", "NotFoundError", "WebhookStore"]

log = get_logger("tensafe_ops.webhook")

APPLY_SLICE = 500
"""Alerts routed and written per statement while ingesting (a few ms of CPU each)."""

SEEN_RETENTION = 7 * 86400.0
"""Seconds a (fingerprint, startsAt, status) key is kept for duplicate detection."""


@dataclass
class IngestResult:
    new_alerts: int = 0
    resolved: int = 0
    duplicates: int = 0
    deliveries: int = 0
    breaches: list[str] = field(default_factory=list)
    """Severities of alerts found breached while ingesting (resolved after respond_by)."""
    destinations: set[tuple[Target, str]] = field(default_factory=set)
    """(target, destination) of the outbox rows added: the dispatcher is told about these."""


@dataclass(frozen=True)
class Received:
    """One alert of one notification in an ingest batch."""

    index: int
    """Which notification of the batch it came in."""
    notification: Notification
    alert: Alert
    now: datetime


@dataclass
class SweepResult:
    stale: list[str] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)
    outcome_unknown: list[int] = field(default_factory=list)
    """Deliveries found `sending` after their lease ran out: dead-lettered."""


@dataclass(frozen=True)
class Gauges:
    """Store state the metrics show; read in one go by `WebhookStore.gauges`."""

    open_alerts: dict[tuple[str, bool], int]
    overdue: dict[str, int]
    outbox_depth: dict[str, int]
    dead_letters: dict[str, int]


class WebhookStore(SqlOutbox):
    """Alerts, dedupe, acks, maintenance windows and the outbox (implements `Outbox`)."""

    def __init__(self, engine: AsyncEngine, policy: Policy) -> None:
        super().__init__(engine, policy.destinations)
        self.policy = policy

    # -- ingesting (webhook.ingest calls this for a batch of journal entries) ------------

    async def apply(
        self, conn: AsyncConnection, batch: Sequence[tuple[Notification, datetime]]
    ) -> list[IngestResult]:
        """Write what the notifications cause, inside the caller's transaction; `now` of each
        is when it was received (first receipt, respond-by)."""
        results = [IngestResult() for _ in batch]
        received = [
            Received(index, notification, alert, now)
            for index, (notification, now) in enumerate(batch)
            for alert in notification.alerts
        ]
        if not received:
            return results
        # One lock order for every writer, so two replicas cannot deadlock on the same alerts;
        # within a key, the earlier notification comes first and is the one that counts.
        received.sort(key=lambda r: (occurrence_key(r.alert), r.index))
        nows = [now for _, now in batch]
        windows = await active_windows(conn, min(nows), max(nows))
        new_firing: list[Received] = []
        new_resolved: list[Received] = []
        repeats: list[Received] = []
        in_batch: set[tuple[str, int, str]] = set()
        for item in received:
            key = occurrence_key(item.alert)
            if key in in_batch:  # a second copy in this batch (HA pair, retry)
                results[item.index].duplicates += 1
                if item.alert.status == "firing":
                    repeats.append(item)
                continue
            in_batch.add(key)
            (new_firing if item.alert.status == "firing" else new_resolved).append(item)
        # In slices: between two, the statements' awaits let the event loop answer requests
        # (a notification of 30,000 alerts would otherwise hold it for seconds).
        for start in range(0, len(new_firing), APPLY_SLICE):
            chunk = new_firing[start : start + APPLY_SLICE]
            repeats += await self._firing(conn, chunk, windows, results)
        for item in new_resolved:
            await self._resolved(conn, item, windows, results[item.index])
        for start in range(0, len(repeats), APPLY_SLICE):
            chunk = repeats[start : start + APPLY_SLICE]
            await touch(conn, [(r.alert, r.now) for r in chunk])
        return results

    async def _firing(
        self,
        conn: AsyncConnection,
        new_firing: list[Received],
        windows: list[Window],
        results: list[IngestResult],
    ) -> list[Received]:
        """Insert the firing occurrences not stored yet and their outbox rows, a few
        statements in all. Returns the ones already stored (repeats: no record, no page)."""
        plans = [plan_alert(self.policy, r.alert.labels, r.now, windows) for r in new_firing]
        rows = [
            alert_row(r.notification, r.alert, plan.severity, plan.respond_by, r.now)
            | {
                "state": "firing",
                "routes": plan.routes_json,
                "maintenance_id": plan.window.id if plan.window else None,
                "held_back": json.dumps(plan.held_back) if plan.held_back else None,
            }
            for r, plan in zip(new_firing, plans, strict=True)
        ]
        ids = await insert_alerts(conn, rows)
        outbox: list[tuple[int, NewDelivery]] = []
        digest: list[tuple[int, str, datetime]] = []
        owner: dict[str, tuple[int, NewDelivery]] = {}
        repeats: list[Received] = []
        for item, plan, row in zip(new_firing, plans, rows, strict=True):
            alert_id = ids.get((row["fingerprint"], row["starts_at_us"]))
            if alert_id is None:
                # The occurrence is stored: a repeat notification, an HA duplicate, a retry,
                # or firing after its own resolve (out of order). No page either way.
                results[item.index].duplicates += 1
                repeats.append(item)
                continue
            results[item.index].new_alerts += 1
            note = None
            if plan.window is not None:
                note = f"{plan.window.reason} (until {plan.window.ends_at:%Y-%m-%d %H:%M} UTC)"
            if plan.held_back:
                _log_held_back(alert_id, row["alertname"], plan)
            view = received_view(
                alert_id, item.notification, item.alert, plan.severity, plan.respond_by, note
            )
            for delivery in firing_deliveries(view, plan):
                outbox.append((alert_id, delivery))
                owner[delivery.idempotency_key] = (item.index, delivery)
            digest.extend((alert_id, to, item.now) for to in digest_destinations(plan))
        for key in await enqueue(conn, outbox, max((r.now for r in new_firing), default=None)):
            index, delivery = owner[key]
            results[index].deliveries += 1
            results[index].destinations.add((delivery.target, delivery.destination))
        await add_digest_items(conn, digest)
        return repeats

    async def _resolved(
        self, conn: AsyncConnection, item: Received, windows: list[Window], result: IngestResult
    ) -> None:
        alert, now = item.alert, item.now
        resolved_at = ts(alert.end or now)
        closed = await conn.execute(
            sa.update(alerts)
            .where(
                alerts.c.fingerprint == alert.fingerprint,
                alerts.c.starts_at_us == micros(alert.starts_at),
                alerts.c.state.in_(("firing", "stale")),
            )
            .values(
                state="resolved", ends_at=resolved_at, resolved_at=resolved_at, closed_at=ts(now)
            )
            .returning(*alerts.c)
        )
        row = closed.mappings().one_or_none()
        if row is None:
            # Resolved already (a duplicate), or before we ever saw it firing: then keep the
            # record, page nobody.
            plan = plan_alert(self.policy, alert.labels, now, windows)
            record = alert_row(item.notification, alert, plan.severity, plan.respond_by, now)
            record |= {
                "state": "resolved",
                "routes": plan.routes_json,
                "ends_at": resolved_at,
                "resolved_at": resolved_at,
                "closed_at": ts(now),
            }
            stored = await conn.execute(
                insert(conn)(alerts).values(record).on_conflict_do_nothing().returning(alerts.c.id)
            )
            if stored.scalar_one_or_none() is None:  # this resolve was stored already
                result.duplicates += 1
            return
        result.resolved += 1
        late = row["acked_at"] is None and resolved_at > row["respond_by"]
        if late and await mark_breached(conn, row["id"]):
            result.breaches.append(row["severity"])
        view = alert_view(row["id"], dict(row), None)
        notified = await notified_targets(conn, row["id"])
        follow_ups = resolved_deliveries(view, notified, self.policy, tell_slack=True)
        added = await enqueue(conn, [(row["id"], d) for d in follow_ups], now)
        result.deliveries += len(added)
        result.destinations.update(
            (d.target, d.destination) for d in follow_ups if d.idempotency_key in added
        )

    # -- acknowledgements -------------------------------------------------------------------

    async def acknowledge(
        self, alert_id: int, by: str, note: str, source: str, at: datetime
    ) -> AckResult:
        async with self.writing() as conn:
            return await acknowledge(conn, alert_id, by, note, source, at)

    async def pagerduty_event(
        self,
        delivery_hash: str | None,
        event_type: str,
        incident_key: str,
        agent: str,
        occurred_at: datetime,
        now: datetime,
    ) -> tuple[str, AckResult | None]:
        """Apply a PagerDuty webhook (already verified). Returns (outcome, ack if one was made):
        outcome is `duplicate`, `unknown_incident`, `predates_alert`, `already_answered` or
        `acknowledged`.

        The ack goes to the occurrence whose incident key it names that had started when it
        happened: each occurrence has a key of its own, and for keys shared by occurrences
        stored before that (`tensafe:<fingerprint>`) the newest one started by then. An event
        older than every occurrence with its key answers none of them (a replay, or an ack of
        an occurrence since pruned). It counts as made when it happened, or now if PagerDuty's
        clock is ahead of ours."""
        at = min(occurred_at, now)
        async with self.writing() as conn:
            if delivery_hash is not None:
                stmt = (
                    insert(conn)(pagerduty_webhooks)
                    .values(webhook_id=delivery_hash, event_type=event_type, received_at=ts(now))
                    .on_conflict_do_nothing()
                    .returning(pagerduty_webhooks.c.webhook_id)
                )
                if (await conn.execute(stmt)).scalar_one_or_none() is None:
                    return "duplicate", None
            named = alerts.c.pd_dedup_key == incident_key
            found = await conn.execute(
                sa.select(alerts.c.id, alerts.c.acked_at, alerts.c.state)
                .where(named, alerts.c.starts_at <= ts(occurred_at))
                .order_by(alerts.c.starts_at.desc(), alerts.c.id.desc())
                .limit(1)
            )
            row = found.mappings().one_or_none()
            if row is None:
                later = await conn.execute(sa.select(alerts.c.id).where(named).limit(1))
                known = later.scalar_one_or_none() is not None
                return ("predates_alert" if known else "unknown_incident"), None
            if row["acked_at"] is not None or row["state"] != "firing":
                return "already_answered", None
            ack = await acknowledge(conn, row["id"], agent, event_type, "pagerduty", at)
            return "acknowledged", ack

    # -- maintenance windows ----------------------------------------------------------------

    async def add_maintenance(
        self,
        starts_at: datetime,
        ends_at: datetime,
        matchers: Sequence[str],
        reason: str,
        by: str,
        now: datetime,
    ) -> dict[str, Any]:
        row = {
            "starts_at": ts(starts_at),
            "ends_at": ts(ends_at),
            "matchers": json.dumps(list(matchers)),
            "reason": reason,
            "created_by": by,
            "created_at": ts(now),
        }
        async with self.writing() as conn:
            inserted = await conn.execute(
                sa.insert(maintenance).values(row).returning(*maintenance.c)
            )
            return dict(inserted.mappings().one())

    async def end_maintenance(self, window_id: int, now: datetime) -> dict[str, Any]:
        """End a window that is in force now: pages flow again for what it matched."""
        async with self.writing() as conn:
            ended = await conn.execute(
                sa.update(maintenance)
                .where(
                    maintenance.c.id == window_id,
                    maintenance.c.starts_at <= ts(now),
                    maintenance.c.ends_at > ts(now),
                )
                .values(ends_at=ts(now))
                .returning(*maintenance.c)
            )
            row = ended.mappings().one_or_none()
            if row is not None:
                return dict(row)
            found = await conn.execute(
                sa.select(maintenance.c.starts_at).where(maintenance.c.id == window_id)
            )
            starts_at = found.scalar_one_or_none()
        if starts_at is None:
            raise NotFoundError(f"no maintenance window {window_id}")
        if starts_at > ts(now):
            raise ConflictError(
                f"maintenance window {window_id} has not started; "
                f"DELETE /api/v1/maintenance/{window_id} to cancel it"
            )
        raise ConflictError(f"maintenance window {window_id} has already ended")

    async def delete_maintenance(self, window_id: int) -> None:
        """Forget a window (alerts it held back keep its id in `maintenance_id`)."""
        async with self.writing() as conn:
            deleted = await conn.execute(
                sa.delete(maintenance)
                .where(maintenance.c.id == window_id)
                .returning(maintenance.c.id)
            )
            if deleted.scalar_one_or_none() is None:
                raise NotFoundError(f"no maintenance window {window_id}")

    async def list_maintenance(self, now: datetime, include_past: bool) -> list[dict[str, Any]]:
        query = sa.select(maintenance).order_by(maintenance.c.starts_at)
        if not include_past:
            query = query.where(maintenance.c.ends_at > ts(now))
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings()]

    # -- reading ------------------------------------------------------------------------------

    async def list_alerts(
        self,
        state: str | None,
        severity: str | None,
        limit: int,
        *,
        before: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; `before`: ids below it (a page's cursor); `since`/`until`: first
        received in [since, until)."""
        query = sa.select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        query = query.where(*window(alerts, alerts.c.first_received_at, before, since, until))
        if state is not None:
            query = query.where(alerts.c.state == state)
        if severity is not None:
            query = query.where(alerts.c.severity == severity)
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings()]

    async def get_alert(self, alert_id: int) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            found = await conn.execute(sa.select(alerts).where(alerts.c.id == alert_id))
            row = found.mappings().one_or_none()
        if row is None:
            raise NotFoundError(f"no alert {alert_id}")
        return dict(row)

    async def gauges(self, now: datetime) -> Gauges:
        firing = alerts.c.state == "firing"
        async with self.engine.connect() as conn:
            acked = alerts.c.acked_at.is_not(None)
            open_rows = await conn.execute(
                sa.select(alerts.c.severity, acked, sa.func.count())
                .where(firing)
                .group_by(alerts.c.severity, acked)
            )
            overdue_rows = await conn.execute(
                sa.select(alerts.c.severity, sa.func.count())
                .where(firing, alerts.c.acked_at.is_(None), alerts.c.respond_by < ts(now))
                .group_by(alerts.c.severity)
            )
            outbox_rows = await conn.execute(
                sa.select(deliveries.c.target, deliveries.c.state, sa.func.count())
                .where(deliveries.c.state.in_(("pending", "dead")))
                .group_by(deliveries.c.target, deliveries.c.state)
            )
            open_alerts = {(s, bool(a)): n for s, a, n in open_rows}
            overdue = {s: n for s, n in overdue_rows}
            outbox = [(t, s, n) for t, s, n in outbox_rows]
        return Gauges(
            open_alerts=open_alerts,
            overdue=overdue,
            outbox_depth={t: n for t, s, n in outbox if s == "pending"},
            dead_letters={t: n for t, s, n in outbox if s == "dead"},
        )

    async def prune(self, now: datetime, retention: float) -> Pruned:
        async with self.writing() as conn:
            return await prune(conn, ts(now) - retention)

    # -- sweep ----------------------------------------------------------------------------------

    async def staleness(self, stale_after: float | None, default: float) -> float:
        """Explicit `stale_after`, else 3x the longest repeat interval seen, else `default`."""
        if stale_after is not None:
            return stale_after
        async with self.engine.connect() as conn:
            longest = (await conn.execute(sa.select(sa.func.max(alerts.c.repeat_gap_max)))).scalar()
        return 3 * float(longest) if longest else default

    async def sweep(self, now: datetime, staleness: float) -> SweepResult:
        """Close firing alerts not re-notified within `staleness` (their resolve never came:
        silenced or truncated), resolving their pages; mark SLA breaches."""
        result = SweepResult()
        async with self.writing() as conn:
            # Breaches first: a silenced alert past respond_by breached before it went stale.
            breached = await conn.execute(
                sa.update(alerts)
                .where(
                    alerts.c.state == "firing",
                    alerts.c.acked_at.is_(None),
                    alerts.c.breached.is_(False),
                    alerts.c.respond_by < ts(now),
                )
                .values(breached=True)
                .returning(alerts.c.severity)
            )
            result.breaches = list(breached.scalars())
            stale = await conn.execute(
                sa.update(alerts)
                .where(alerts.c.state == "firing", alerts.c.last_seen_at < ts(now) - staleness)
                .values(state="stale", closed_at=ts(now))
                .returning(*alerts.c)
            )
            for row in stale.mappings().all():
                result.stale.append(row["severity"])
                view = alert_view(row["id"], dict(row), None)
                notified = await notified_targets(conn, row["id"])
                follow_ups = resolved_deliveries(view, notified, self.policy, tell_slack=False)
                await enqueue(conn, [(row["id"], d) for d in follow_ups], now)
            # A sender that neither recorded an outcome nor kept its lease died mid-request.
            expired = deliveries.c.lease_until < ts(now)
            result.outcome_unknown = await give_up_unknown(conn, now, expired)
            # Seen keys only speed up duplicate detection; the unique alert occurrence
            # (fingerprint, startsAt) still stops a second page once they are gone.
            await conn.execute(
                sa.delete(seen).where(seen.c.first_seen_at < ts(now) - SEEN_RETENTION)
            )
        return result


def _log_held_back(alert_id: int, alertname: str, plan: Plan) -> None:
    """Every page a window holds back is logged (and recorded on the alert): at warning level
    when no Slack note carries it either, since then nothing else shows it happened."""
    assert plan.window is not None
    (log.info if plan.note_to else log.warning)(
        "page_held_back",
        alert_id=alert_id,
        alertname=alertname,
        window=plan.window.id,
        reason=plan.window.reason,
        targets=list(plan.held_back),
        note_to=plan.note_to,
    )
