"""What one received alert causes: its severity, SLA and routes, and the outbox rows to write.

Pure functions over config and the alert; the store runs them inside its ingest transaction.
Idempotency keys name the alert occurrence (fingerprint + startsAt), the destination and the
kind of message, so a repeated plan can never add a second row (the column is unique).
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property, lru_cache
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
class Routed:
    """What routing decides from the labels alone (maintenance and time come on top)."""

    severity: Severity
    route_names: tuple[str, ...]
    routes_json: str
    targets: tuple[TargetSpec, ...]
    sla_seconds: float


ROUTED_CACHE_MAX = 4096


@dataclass(frozen=True)
class Policy:
    """The routing-relevant part of the config, prepared once."""

    routes: tuple[RouteSpec, ...]
    default_severity: Severity
    severity_overrides: Mapping[str, Severity]
    sla: Mapping[Severity, float]
    maintenance_slack: str | None
    destinations: DestinationsConfig
    _routed: dict[tuple[str, ...], Routed] = field(default_factory=dict, compare=False, repr=False)
    """Routing decisions by the values of the labels routing reads: alerts of one group differ
    in labels no matcher looks at (instance, pod), so most are a dictionary hit."""

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

    @cached_property
    def routing_label_names(self) -> tuple[str, ...]:
        names = {"alertname", "severity"}  # severity and its per-alertname overrides
        names.update(m.name for route in self.routes for m in route.matchers)
        return tuple(sorted(names))

    def severity(self, labels: Mapping[str, str]) -> Severity:
        return self.routed(labels).severity

    def routed(self, labels: Mapping[str, str]) -> Routed:
        # Absent and empty labels match alike (Alertmanager semantics), so "" stands for both.
        key = tuple(labels.get(name, "") for name in self.routing_label_names)
        found = self._routed.get(key)
        if found is None:
            if len(self._routed) >= ROUTED_CACHE_MAX:
                self._routed.clear()
            found = self._routed[key] = self._route(labels)
        return found

    def _route(self, labels: Mapping[str, str]) -> Routed:
        severity = effective_severity(labels, self.default_severity, self.severity_overrides)
        matched = match_routes(self.routes, routing_labels(labels, severity))
        names = tuple(r.name for r in matched)
        return Routed(
            severity=severity,
            route_names=names,
            routes_json=json.dumps(names),
            targets=tuple(targets_of(matched)),
            sla_seconds=sla_seconds(severity, self.sla, (r.sla_seconds for r in matched)),
        )


@dataclass(frozen=True)
class Plan:
    severity: Severity
    respond_by: datetime
    route_names: tuple[str, ...]
    routes_json: str
    targets: tuple[TargetSpec, ...]
    window: Window | None
    note_to: str | None
    """Slack destination that carries the maintenance note instead of the page."""
    held_back: tuple[str, ...] = ()
    """`pagerduty:<destination>` pages the window held back (recorded on the alert)."""


def plan_alert(
    policy: Policy, labels: Mapping[str, str], received_at: datetime, windows: Sequence[Window]
) -> Plan:
    routed = policy.routed(labels)
    deadline = respond_by(received_at, routed.sla_seconds)
    window = None
    if windows:  # windows see what routes see: `severity` is the effective severity
        window = active_window(windows, routing_labels(labels, routed.severity), received_at)
    targets, note_to = routed.targets, None
    held_back: tuple[str, ...] = ()
    if window is not None:
        kept, note_to = apply_maintenance(targets, policy.maintenance_slack)
        held_back = tuple(f"{t.type}:{t.destination}" for t in targets if t not in kept)
        targets = tuple(kept)
    return Plan(
        routed.severity,
        deadline,
        routed.route_names,
        routed.routes_json,
        targets,
        window,
        note_to,
        held_back,
    )


@dataclass(frozen=True)
class NewDelivery:
    target: Target
    destination: str
    kind: Kind
    payload: Mapping[str, Any]
    idempotency_key: str
    encoded: str | None = None
    """`payload` as JSON when it was made already (recipes)."""


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


@lru_cache(maxsize=256)
def _recipe(target: str, note: str | None, urgency: str) -> tuple[dict[str, Any], str]:
    """A firing recipe and its JSON; few distinct ones exist, so they are made once."""
    recipe: dict[str, Any] = {RENDER_LATER: target, "note": note}
    if target == "pagerduty":
        recipe["urgency"] = urgency
    return recipe, json.dumps(recipe, separators=(",", ":"))


_FIRING: dict[str, tuple[Target, Kind]] = {
    "pagerduty": ("pagerduty", "trigger"),
    "slack": ("slack", "message"),
    "zendesk": ("zendesk", "ticket"),
}


def firing_deliveries(view: AlertView, plan: Plan) -> list[NewDelivery]:
    """One outbox row per target of the plan (pages, Slack messages or notes, tickets), each
    holding a recipe (see RENDER_LATER) that `render_firing` turns into the request body.
    Digest targets get none: the store records a digest item instead (`webhook.digest_store`)."""
    rows: list[NewDelivery] = []
    for target in plan.targets:
        if target.type == "slack_digest":
            continue
        name, kind = _FIRING[target.type]
        recipe, encoded = _recipe(name, view.maintenance_note, target.urgency)
        key = _key(name, target.destination, view, kind)
        rows.append(NewDelivery(name, target.destination, kind, recipe, key, encoded))
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
