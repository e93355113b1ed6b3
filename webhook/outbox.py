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
DeliveryState = Literal["pending", "sending", "sent", "dead"]
"""`sending`: an attempt at a target without an idempotency key (Slack) is under way; its
outcome is recorded next. Found so later (the sender died mid-request), the outcome is
unknown and the delivery is not sent again by itself (`OUTCOME_UNKNOWN`)."""

SENT_ONCE: frozenset[str] = frozenset({"slack"})
"""Targets that cannot deduplicate a repeated request (Slack has no idempotency key): each
attempt is recorded as `sending` before it starts. PagerDuty (dedup_key) and Zendesk
(Idempotency-Key) absorb a repeat, so they skip that commit and are simply sent again."""

OUTCOME_UNKNOWN = (
    "outcome unknown: the replica sending it stopped during the request; not sent again "
    "automatically (Slack has no idempotency key, a resend could post it twice). Retry it "
    "if it never arrived"
)


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
    claimed_until: datetime | None = None
    """The lease of the claim that returned it: the claim's identity (`start_sending`)."""


@dataclass(frozen=True)
class Outcome:
    """Result of one send attempt. `retryable` failures go back to the outbox; others are dead."""

    ok: bool
    retryable: bool = False
    retry_after: float | None = None
    error: str | None = None
    status: int | None = None
    response: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Takeover:
    released: int
    """Leases of the previous sender ended."""
    last_attempt: datetime | None
    """When the destination was last sent to (by anyone): the new sender's rate limiter
    carries on from there."""


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
        """The destinations of `target` with pending deliveries due by `now`, leased or not:
        a lease may belong to a replica that died, whose destinations are taken over."""
        ...

    async def take_over(self, target: Target, destination: str, now: datetime) -> "Takeover":
        """This replica has just become the destination's only sender (`webhook.owners`):
        whoever sent to it before is gone, so the leases on its pending deliveries are void.
        Ends them (claimable now, not when they run out), and dead-letters its deliveries
        left `sending` (`OUTCOME_UNKNOWN`)."""
        ...

    async def release(self, delivery_ids: Sequence[int], now: datetime) -> None:
        """End the leases of claimed deliveries that were not attempted (the lease expires
        `now`), so that they are claimable again at once rather than after the lease."""
        ...

    async def start_sending(self, delivery: Delivery, now: datetime) -> bool:
        """Record that an attempt starts (state `sending`), only if the delivery is still
        pending under the claim that returned it. False: the claim was voided (taken over
        by another replica): do not send."""
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
