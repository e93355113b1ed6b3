"""The seam between receiving and delivering: outbox rows and the store operations on them.

The receiver stores each outbound message in the same transaction as the alerts (the
outbox): rendered, or for firing messages as a recipe that the outbox renders from the
alert row when the dispatcher claims it (`webhook.intake.RENDER_LATER`). The dispatcher
claims due rows, sends them and records the outcome. `webhook.store` implements `Outbox`;
`webhook.dispatch` uses it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

Target = Literal["pagerduty", "slack", "zendesk"]
DeliveryState = Literal["pending", "sent", "dead"]


@dataclass(frozen=True)
class AlertView:
    """What a message needs to know about one alert (built by the receiver from its store)."""

    alert_id: int
    fingerprint: str
    alertname: str
    status: Literal["firing", "resolved"]
    severity: Literal["critical", "warning", "info"]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    external_url: str
    """Alertmanager's URL (from the notification)."""
    respond_by: datetime
    maintenance_note: str | None = None
    """Set when a maintenance window downgraded a page to a note."""
    incident_key: str | None = None
    """The PagerDuty dedup key stored with the occurrence; None: derived from fingerprint and
    startsAt (`webhook.messages.pagerduty_dedup_key`)."""


@dataclass(frozen=True)
class Delivery:
    id: int
    target: Target
    destination: str
    """The configured destination's name (a Slack webhook, PagerDuty routing key or Zendesk
    account): its rate limit and credentials are looked up by it."""
    payload: Mapping[str, Any]
    """The complete request body (recipes are rendered by the time a delivery is claimed)."""
    idempotency_key: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Outcome:
    """Result of one send attempt. `retryable` failures go back to the outbox; others are dead."""

    ok: bool
    retryable: bool = False
    retry_after: float | None = None
    error: str | None = None
    status: int | None = None
    response: Mapping[str, Any] = field(default_factory=dict)


class Outbox(Protocol):
    async def claim(
        self,
        target: Target,
        limit: int,
        now: datetime,
        lease_seconds: float,
        destination: str | None = None,
    ) -> list[Delivery]:
        """Lease up to `limit` due pending deliveries for `target` (not_before <= now and no live
        lease), only those to `destination` when given. Safe with several replicas: a row is
        leased by one claimer at a time (FOR UPDATE SKIP LOCKED on PostgreSQL, a conditional
        UPDATE on SQLite)."""
        ...

    async def due_destinations(self, target: Target, now: datetime) -> list[str]:
        """The destinations of `target` that have deliveries `claim` would lease now."""
        ...

    async def release(self, delivery_ids: Sequence[int], now: datetime) -> None:
        """End the leases of claimed deliveries that were not attempted (the lease expires
        `now`), so that they are claimable again at once rather than after the lease."""
        ...

    async def mark_sent(self, delivery_id: int, now: datetime, status: int) -> None: ...

    async def mark_retry(
        self,
        delivery_id: int,
        now: datetime,
        not_before: datetime,
        error: str,
        status: int | None = None,
    ) -> None:
        """Back to pending until `not_before`; `status` is the attempt's HTTP status, None
        when it got no answer (every attempt records its own: `last_status`)."""
        ...

    async def mark_dead(
        self, delivery_id: int, now: datetime, error: str, status: int | None = None
    ) -> None: ...
