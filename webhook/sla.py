"""Respond-within SLA: pure functions, the clock passed in.

Rules:
- respond_by = first received + the SLA of the alert's class (per severity), or the smallest SLA
  set on one of its matched routes.
- An alert is answered by an acknowledgement (API or PagerDuty) or by resolving.
- It breaches when respond_by passes before it is answered; answering late is still a breach.
- While unanswered and firing, it is overdue by now - respond_by (time left is the opposite).
"""

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from webhook.routing import Severity

ACK_BUCKETS: tuple[float, ...] = (60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0)
"""Time-to-acknowledge histogram buckets around the three SLAs (15 m, 1 h, 24 h)."""


def sla_seconds(
    severity: Severity,
    per_severity: Mapping[Severity, float],
    route_slas: Iterable[float | None] = (),
) -> float:
    route_values = [s for s in route_slas if s is not None]
    return min(route_values) if route_values else per_severity[severity]


def respond_by(first_received: datetime, seconds: float) -> datetime:
    return first_received + timedelta(seconds=seconds)


def answered_at(acked_at: datetime | None, resolved_at: datetime | None) -> datetime | None:
    """When the alert got its response: the earlier of acknowledgement and resolution."""
    times = [t for t in (acked_at, resolved_at) if t is not None]
    return min(times) if times else None


def is_breached(
    deadline: datetime, acked_at: datetime | None, resolved_at: datetime | None, now: datetime
) -> bool:
    answered = answered_at(acked_at, resolved_at)
    if answered is None:
        return now > deadline
    return answered > deadline


def seconds_left(deadline: datetime, now: datetime) -> float:
    """Positive while within the SLA; negative = overdue by that many seconds."""
    return (deadline - now).total_seconds()


def time_to_acknowledge(first_received: datetime, acked_at: datetime) -> float:
    return max(0.0, (acked_at - first_received).total_seconds())
