"""Statements the store runs inside its transactions, and the row <-> value conversions."""

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tensafe_ops.log import get_logger
from webhook.bulk import insert_rows
from webhook.intake import NewDelivery, micros
from webhook.messages import pagerduty_dedup_key
from webhook.outbox import AlertView
from webhook.payload import Alert, Notification
from webhook.routing import Matcher, Severity, Window, parse_matcher
from webhook.sla import time_to_acknowledge
from webhook.tables import alerts, deliveries, maintenance
from webhook.timebounds import from_stored

log = get_logger("tensafe_ops.webhook")


@dataclass(frozen=True)
class AckResult:
    severity: str
    seconds_to_ack: float
    breached_now: bool


class NotFoundError(LookupError):
    """No alert or delivery with that id (HTTP 404)."""


class ConflictError(ValueError):
    """The request contradicts the current state, e.g. acking an acked alert (HTTP 409)."""


# Made once: json.dumps with any option builds a new encoder per call (hot path).
COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
SORTED_JSON = json.JSONEncoder(sort_keys=True)

MIN_REPEAT_GAP = 60.0
"""Gaps between notifications shorter than this are HA duplicates, not repeat intervals."""


def ts(moment: datetime) -> float:
    return moment.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else from_stored(value)


@contextlib.asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads on the hot path, outside any transaction: on PostgreSQL a read
    inside one costs a BEGIN and a ROLLBACK round trip on top of the query itself."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


def window(
    table: sa.Table,
    recorded_at: sa.Column[float],
    before: int | None,
    since: datetime | None,
    until: datetime | None,
) -> list[sa.ColumnElement[bool]]:
    """The conditions of one page of a newest-first list (`webhook.paging`)."""
    conditions: list[sa.ColumnElement[bool]] = []
    if before is not None:
        conditions.append(table.c.id < before)
    if since is not None:
        conditions.append(recorded_at >= ts(since))
    if until is not None:
        conditions.append(recorded_at < ts(until))
    return conditions


def insert(conn: AsyncConnection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


@functools.lru_cache(maxsize=256)
def window_matchers(stored: str) -> tuple[Matcher, ...]:
    """The parsed matchers of a window's stored JSON list. Cached: ingest reads the active
    windows once per batch (every few notifications in a storm, and storms come during
    maintenance), and parsing them again each time (JSON, the matcher syntax, RE2's compile
    cache, which keeps only 128 regexes) is wasted work. The result is immutable (frozen
    matchers in a tuple), so sharing it is safe; a row that does not parse raises each time
    (errors are not cached) and is logged by the caller."""
    matchers = json.loads(stored)
    if not isinstance(matchers, list):
        raise TypeError("matchers is not a list")
    return tuple(parse_matcher(m) for m in matchers)


async def active_windows(
    conn: AsyncConnection, earliest: datetime, latest: datetime
) -> list[Window]:
    """Windows active at some moment between `earliest` and `latest`. A window that cannot
    be evaluated (a row no release validates any more) is left out and logged: routing fails
    open, so the alerts it would have matched page rather than fail ingest."""
    rows = await conn.execute(
        sa.select(maintenance).where(
            maintenance.c.starts_at <= ts(latest), maintenance.c.ends_at > ts(earliest)
        )
    )
    windows: list[Window] = []
    for r in rows.mappings():
        try:
            windows.append(
                Window(
                    id=r["id"],
                    starts_at=from_stored(r["starts_at"]),
                    ends_at=from_stored(r["ends_at"]),
                    matchers=window_matchers(r["matchers"]),
                    reason=r["reason"],
                )
            )
        except (ValueError, TypeError) as exc:  # MatcherError and JSONDecodeError included
            log.error(
                "maintenance_window_unreadable",
                window=r["id"],
                error=f"{type(exc).__name__}: {exc}"[:300],
                note="ignored: the alerts it matches page",
            )
    return windows


def occurrence_key(alert: Alert) -> tuple[str, int, str]:
    return alert.fingerprint, micros(alert.starts_at), alert.status


async def insert_alerts(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]]
) -> dict[tuple[str, int], int]:
    """Insert alert occurrences that don't exist yet; ids of the inserted ones by key."""
    inserted = await insert_rows(
        conn, alerts, rows, ("id", "fingerprint", "starts_at_us"), skip_conflicts=True
    )
    return {(f, s): i for i, f, s in inserted}


async def touch(conn: AsyncConnection, repeats: Sequence[tuple[Alert, datetime]]) -> None:
    """Repeats (or HA duplicates) of firing alerts: they are still alive; remember the longest
    gap between notifications that is long enough to be a repeat interval. One statement."""
    if not repeats:
        return
    gap = sa.bindparam("now", type_=sa.Float) - alerts.c.last_seen_at
    longest = sa.case(
        (
            sa.and_(gap >= MIN_REPEAT_GAP, gap > sa.func.coalesce(alerts.c.repeat_gap_max, 0.0)),
            gap,
        ),
        else_=alerts.c.repeat_gap_max,
    )
    stmt = (
        sa.update(alerts)
        .where(
            alerts.c.fingerprint == sa.bindparam("fp"),
            alerts.c.starts_at_us == sa.bindparam("starts"),
            alerts.c.state == "firing",
        )
        .values(repeat_gap_max=longest, last_seen_at=sa.bindparam("now", type_=sa.Float))
    )
    params = [
        {"fp": alert.fingerprint, "starts": micros(alert.starts_at), "now": ts(now)}
        for alert, now in repeats
    ]
    await conn.execute(stmt, params)


async def mark_breached(conn: AsyncConnection, alert_id: int) -> bool:
    flipped = await conn.execute(
        sa.update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.breached.is_(False))
        .values(breached=True)
        .returning(alerts.c.id)
    )
    return flipped.scalar_one_or_none() is not None


async def acknowledge(
    conn: AsyncConnection, alert_id: int, by: str, note: str, source: str, at: datetime
) -> AckResult:
    updated = await conn.execute(
        sa.update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.acked_at.is_(None), alerts.c.state == "firing")
        .values(acked_at=ts(at), acked_by=by, ack_note=note, ack_source=source)
        .returning(alerts.c.severity, alerts.c.first_received_at, alerts.c.respond_by)
    )
    row = updated.mappings().one_or_none()
    if row is None:
        current = await conn.execute(
            sa.select(alerts.c.state, alerts.c.acked_by).where(alerts.c.id == alert_id)
        )
        found = current.mappings().one_or_none()
        if found is None:
            raise NotFoundError(f"no alert {alert_id}")
        if found["acked_by"] is not None:
            raise ConflictError(f"alert {alert_id} was already acknowledged by {found['acked_by']}")
        raise ConflictError(f"alert {alert_id} is {found['state']}, not firing")
    breached_now = ts(at) > row["respond_by"] and await mark_breached(conn, alert_id)
    received = from_stored(row["first_received_at"])
    return AckResult(row["severity"], time_to_acknowledge(received, at), breached_now)


async def notified_targets(conn: AsyncConnection, alert_id: int) -> list[tuple[str, str]]:
    rows = await conn.execute(
        sa.select(deliveries.c.target, deliveries.c.destination)
        .where(deliveries.c.alert_id == alert_id, deliveries.c.kind.in_(("trigger", "message")))
        .order_by(deliveries.c.id)
    )
    return [(t, d) for t, d in rows]


async def enqueue(
    conn: AsyncConnection, rows: Sequence[tuple[int, NewDelivery]], now: datetime | None
) -> set[str]:
    """Add outbox rows (alert id, delivery), due at `now`; an existing idempotency key is left
    alone. Returns the keys actually added."""
    if not rows or now is None:
        return set()
    values = [
        {
            "alert_id": alert_id,
            "target": d.target,
            "destination": d.destination,
            "kind": d.kind,
            "payload": d.encoded or COMPACT_JSON.encode(d.payload),
            "idempotency_key": d.idempotency_key,
            "state": "pending",
            "attempts": 0,
            "not_before": ts(now),
            "created_at": ts(now),
            "updated_at": ts(now),
        }
        for alert_id, d in rows
    ]
    added = await insert_rows(conn, deliveries, values, ("idempotency_key",), skip_conflicts=True)
    return {key for (key,) in added}


def alert_row(
    notification: Notification, alert: Alert, severity: str, respond_by: datetime, now: datetime
) -> dict[str, Any]:
    """The columns of a new alert record (state, routes and maintenance come on top)."""
    return {
        "fingerprint": alert.fingerprint,
        "starts_at_us": micros(alert.starts_at),
        "alertname": alert.labels.get("alertname", ""),
        "severity": severity,
        "labels": SORTED_JSON.encode(alert.labels),
        "annotations": SORTED_JSON.encode(alert.annotations),
        "generator_url": alert.generator_url,
        "external_url": notification.external_url,
        "receiver": notification.receiver,
        "starts_at": ts(alert.starts_at),
        "ends_at": None,
        "first_received_at": ts(now),
        "last_seen_at": ts(now),
        "respond_by": ts(respond_by),
        "pd_dedup_key": pagerduty_dedup_key(alert.fingerprint, alert.starts_at),
    }


def received_view(
    alert_id: int,
    notification: Notification,
    alert: Alert,
    severity: Severity,
    respond_by: datetime,
    maintenance_note: str | None,
) -> AlertView:
    """The view of a firing alert just received: what `alert_view` would read back from its
    new row, built from the parsed alert (no JSON round trip on the ingest path)."""
    return AlertView(
        alert_id=alert_id,
        fingerprint=alert.fingerprint,
        alertname=alert.labels.get("alertname", ""),
        status="firing",
        severity=severity,
        labels=alert.labels,
        annotations=alert.annotations,
        starts_at=alert.starts_at,
        ends_at=None,
        generator_url=alert.generator_url,
        external_url=notification.external_url,
        respond_by=respond_by,
        maintenance_note=maintenance_note,
    )


def alert_view(alert_id: int, row: dict[str, Any], maintenance_note: str | None) -> AlertView:
    return AlertView(
        alert_id=alert_id,
        fingerprint=row["fingerprint"],
        alertname=row["alertname"],
        status="firing" if row["state"] == "firing" else "resolved",
        severity=row["severity"],
        labels=json.loads(row["labels"]),
        annotations=json.loads(row["annotations"]),
        starts_at=from_stored(row["starts_at"]),
        ends_at=dt(row["ends_at"]),
        generator_url=row["generator_url"],
        external_url=row["external_url"],
        respond_by=from_stored(row["respond_by"]),
        maintenance_note=maintenance_note,
        incident_key=row["pd_dedup_key"],
    )
