"""What one received alert causes: its severity, SLA and routes, and the outbox rows to write.

Pure functions over config and the alert; the store runs them inside its accept transaction.
Idempotency keys name the alert occurrence (fingerprint + startsAt), the destination and the
kind of message, so a repeated plan can never add a second row (the column is unique).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from webhook.config import WebhookConfig
from webhook.messages import Urgency, pagerduty_event, slack_message, zendesk_ticket
from webhook.outbox import AlertView, Target
from webhook.routing import (
    RouteSpec,
    Severity,
    TargetSpec,
    Window,
    active_window,
    apply_maintenance,
    effective_severity,
    match_routes,
    routing_labels,
    targets_of,
)
from webhook.sla import respond_by, sla_seconds
from webhook.targets import DestinationsConfig

Kind = Literal["trigger", "resolve", "message", "ticket", "digest"]
ROUTING_KEY_PLACEHOLDER = ""
"""PagerDuty events are stored without the routing key; the notifier adds it at send time."""
RENDER_LATER = "render_later"
"""Marks an outbox payload that is a recipe, not yet the request body. Firing messages are
rendered when the dispatcher claims them (`render_firing`), from the alert row committed in
the same transaction as the outbox row: rendering and storing 20 messages of ~1.5 KB per
10-alert notification was most of the receiver's cost (bench/README.md). Follow-ups
(resolves, stale closes) are rare and stored rendered."""


@dataclass(frozen=True)
class Policy:
    """The routing-relevant part of the config, prepared once."""

    routes: tuple[RouteSpec, ...]
    default_severity: Severity
    severity_overrides: Mapping[str, Severity]
    sla: Mapping[Severity, float]
    maintenance_slack: str | None
    destinations: DestinationsConfig

    @classmethod
    def from_config(cls, cfg: WebhookConfig) -> "Policy":
        return cls(
            routes=tuple(cfg.route_specs()),
            default_severity=cfg.default_severity,
            severity_overrides=dict(cfg.severity_overrides),
            sla=dict(cfg.sla),
            maintenance_slack=cfg.maintenance_slack,
            destinations=cfg.destinations,
        )

    def severity(self, labels: Mapping[str, str]) -> Severity:
        return effective_severity(labels, self.default_severity, self.severity_overrides)


@dataclass(frozen=True)
class Plan:
    severity: Severity
    respond_by: datetime
    route_names: tuple[str, ...]
    targets: tuple[TargetSpec, ...]
    window: Window | None
    note_to: str | None
    """Slack destination that carries the maintenance note instead of the page."""


def plan_alert(
    policy: Policy, labels: Mapping[str, str], received_at: datetime, windows: Iterable[Window]
) -> Plan:
    severity = policy.severity(labels)
    matched = match_routes(policy.routes, routing_labels(labels, severity))
    targets = targets_of(matched)
    deadline = respond_by(
        received_at, sla_seconds(severity, policy.sla, (r.sla_seconds for r in matched))
    )
    window = active_window(windows, labels, received_at)
    note_to = None
    if window is not None:
        targets, note_to = apply_maintenance(targets, policy.maintenance_slack)
    return Plan(severity, deadline, tuple(r.name for r in matched), tuple(targets), window, note_to)


@dataclass(frozen=True)
class NewDelivery:
    target: Target
    destination: str
    kind: Kind
    payload: Mapping[str, Any]
    idempotency_key: str


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """Exact integer microseconds since the epoch (the startsAt part of idempotency keys)."""
    delta = moment - _EPOCH  # integer fields: 3x faster than dividing by a timedelta
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _key(target: str, destination: str, view: AlertView, kind: Kind) -> str:
    starts = micros(view.starts_at)
    return f"{target}:{destination}:{view.fingerprint}:{starts}:{kind}"


def _slack(view: AlertView, destination: str, destinations: DestinationsConfig) -> NewDelivery:
    channel = destinations.slack[destination].channel if destination in destinations.slack else None
    return NewDelivery(
        "slack",
        destination,
        "message",
        slack_message(view, channel),
        _key("slack", destination, view, "message"),
    )


def firing_deliveries(view: AlertView, plan: Plan, policy: Policy) -> list[NewDelivery]:
    """One outbox row per target of the plan (pages, Slack messages or notes, tickets), each
    holding a recipe (see RENDER_LATER) that `render_firing` turns into the request body.
    Digest targets get none: the store records a digest item instead (`webhook.digest_store`)."""
    rows: list[NewDelivery] = []
    for target in plan.targets:
        if target.type == "slack_digest":
            continue
        recipe: dict[str, Any] = {RENDER_LATER: target.type, "note": view.maintenance_note}
        if target.type == "pagerduty":
            key = _key("pagerduty", target.destination, view, "trigger")
            recipe["urgency"] = target.urgency
            rows.append(NewDelivery("pagerduty", target.destination, "trigger", recipe, key))
        elif target.type == "slack":
            key = _key("slack", target.destination, view, "message")
            rows.append(NewDelivery("slack", target.destination, "message", recipe, key))
        else:
            key = _key("zendesk", target.destination, view, "ticket")
            rows.append(NewDelivery("zendesk", target.destination, "ticket", recipe, key))
    return rows


def render_firing(
    recipe: Mapping[str, Any], destination: str, stored: AlertView, destinations: DestinationsConfig
) -> dict[str, Any]:
    """The request body of a firing delivery from its recipe and its alert as stored. The
    message shows the alert as it was received (firing), whatever happened to it since: a
    later resolve has its own outbox row, sent after this one."""
    view = replace(stored, status="firing", ends_at=None, maintenance_note=recipe.get("note"))
    target = recipe[RENDER_LATER]
    if target == "pagerduty":
        urgency: Urgency = "low" if recipe.get("urgency") == "low" else "high"
        return pagerduty_event(view, ROUTING_KEY_PLACEHOLDER, "trigger", urgency)
    if target == "slack":
        return dict(_slack(view, destination, destinations).payload)
    return zendesk_ticket(view, view.respond_by)


def resolved_deliveries(
    view: AlertView, notified: Sequence[tuple[str, str]], policy: Policy, *, tell_slack: bool
) -> list[NewDelivery]:
    """Follow-ups for an alert that resolved (or went stale): a PagerDuty resolve for every
    routing key that was triggered and, when `tell_slack`, a resolved message to every Slack
    destination that was told. `notified` holds the (target, destination) pairs of its firing
    deliveries. Zendesk tickets stay open for a human to review."""
    rows: list[NewDelivery] = []
    for target, destination in notified:
        if target == "pagerduty":
            event = pagerduty_event(view, ROUTING_KEY_PLACEHOLDER, "resolve", "high")
            key = _key("pagerduty", destination, view, "resolve")
            rows.append(NewDelivery("pagerduty", destination, "resolve", event, key))
        elif target == "slack" and tell_slack:
            row = _slack(view, destination, policy.destinations)
            key = _key("slack", destination, view, "resolve")
            rows.append(NewDelivery("slack", destination, "resolve", row.payload, key))
    return rows
