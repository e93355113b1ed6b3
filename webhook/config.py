"""Webhook receiver configuration: auth, severity, SLAs, routes, destinations, sweep.

Example (YAML):

    webhook:
      enabled: true
      receivers:
        /api/v1/alerts: {auth: {bearer_token: !env AM_WEBHOOK_TOKEN}}
      api_auth: {bearer_token: !env OPS_API_TOKEN}
      routes:
        - name: pages
          matchers: ['severity="critical"']
          targets: ["pagerduty:primary", "slack:incidents"]
      destinations:
        pagerduty: {primary: {routing_key: !env PD_ROUTING_KEY}}
        slack: {incidents: {webhook_url: !env SLACK_INCIDENTS_URL}}

Authentication is never off by default: a receiver (and the management API) needs a bearer
token, basic credentials, or the explicit string `none`.
"""

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from tensafe_ops.auth import Auth, BasicAuth, Credentials
from tensafe_ops.model import Model, Seconds
from webhook.routing import (
    MatcherError,
    RouteSpec,
    Severity,
    TargetSpec,
    parse_matcher,
)
from webhook.targets import DestinationsConfig, DigestConfig, DispatchConfig, IngestConfig

DEFAULT_RECEIVER_PATH = "/api/v1/alerts"

__all__ = ["Auth", "BasicAuth", "Credentials", "WebhookConfig"]


class ReceiverConfig(Model):
    auth: Auth


class Target(Model):
    type: Literal["pagerduty", "slack", "zendesk", "slack_digest"]
    """`slack_digest` collects the alerts into one periodic message to a Slack destination
    (see `digest`) instead of posting each one."""
    destination: str
    urgency: Literal["high", "low"] = "high"
    """PagerDuty only: high pages, low notifies without waking anyone."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """Accept `"pagerduty:primary"` or `"pagerduty:primary:low"` for brevity."""
        if isinstance(data, str):
            parts = data.split(":")
            if len(parts) not in (2, 3):
                raise ValueError("expected type:destination or type:destination:urgency")
            spec: dict[str, str] = {"type": parts[0], "destination": parts[1]}
            if len(parts) == 3:
                spec["urgency"] = parts[2]
            return spec
        return data


class Route(Model):
    name: str
    matchers: list[str] = Field(default_factory=list)
    """Alertmanager-style, all must match, e.g. ['severity="critical"', 'alertname=~"Disk.*"']."""
    targets: list[Target] = Field(default_factory=list)
    continue_: bool = Field(default=False, alias="continue")
    """Keep matching later routes after this one (Alertmanager's `continue`)."""
    sla: Seconds | None = None
    """Respond-within seconds for alerts on this route (overrides the severity's SLA)."""

    @field_validator("matchers")
    @classmethod
    def _valid_matchers(cls, matchers: list[str]) -> list[str]:
        for text in matchers:
            try:
                parse_matcher(text)
            except MatcherError as exc:
                raise ValueError(str(exc)) from None
        return matchers

    def spec(self) -> RouteSpec:
        return RouteSpec(
            name=self.name,
            matchers=tuple(parse_matcher(m) for m in self.matchers),
            targets=tuple(TargetSpec(t.type, t.destination, t.urgency) for t in self.targets),
            continue_matching=self.continue_,
            sla_seconds=self.sla,
        )


def _default_sla() -> dict[Severity, float]:
    return {"critical": 900.0, "warning": 3600.0, "info": 86400.0}


def _default_routes() -> list[Route]:
    """Critical pages PagerDuty (high urgency) and posts to Slack #incidents; warning posts to
    Slack #alerts; info opens a Zendesk task due within its 24 h SLA."""
    return [
        Route.model_validate(
            {
                "name": "critical",
                "matchers": ['severity="critical"'],
                "targets": ["pagerduty:default:high", "slack:incidents"],
            }
        ),
        Route.model_validate(
            {"name": "warning", "matchers": ['severity="warning"'], "targets": ["slack:alerts"]}
        ),
        Route.model_validate(
            {"name": "info", "matchers": ['severity="info"'], "targets": ["zendesk:default"]}
        ),
    ]


class WebhookConfig(Model):
    enabled: bool = False
    receivers: dict[str, ReceiverConfig] = Field(default_factory=dict)
    """POST paths that accept Alertmanager notifications, each with its own auth."""
    api_auth: Auth | None = None
    """Auth of the management API (alert list, acks, maintenance, dead letters)."""
    body_limit_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    """Largest notification accepted (413 beyond: Alertmanager drops it). About 4,000 alerts
    of typical size fit in the default 1 MiB: cap Alertmanager's `max_alerts` below that."""
    journal_budget_bytes: Annotated[int, Field(ge=1024)] = 32 * 1024 * 1024
    """Bodies waiting for their journal commit at most (a slow or hung database): past it a
    notification is answered 503 at once, before its body is read."""
    store_timeout: Seconds = 10.0
    """A notification not stored within this answers 503 (Alertmanager retries); every other
    database call on a request's path is bounded by it too."""
    default_severity: Severity = "warning"
    """For a missing or unknown `severity` label."""
    severity_overrides: dict[str, Severity] = Field(default_factory=dict)
    """alertname -> severity, beating the label."""
    sla: dict[Severity, Seconds] = Field(default_factory=_default_sla)
    routes: list[Route] = Field(default_factory=_default_routes)
    maintenance_slack: str | None = None
    """Slack destination for maintenance notes; default: the route's first Slack target."""
    stale_after: Seconds | None = None
    """Close a firing alert not re-notified for this long. Default: 3x the longest repeat
    interval seen, or `stale_default` before any repeat was seen."""
    stale_default: Seconds = 43200.0
    sweep_interval: Seconds = 15.0
    retention: Seconds = 30 * 86400.0
    """Closed alerts and finished deliveries older than this are deleted (webhook.retention)."""
    """How often stale alerts are closed, breaches counted and the gauges refreshed."""
    pagerduty_webhook_secrets: list[SecretStr] = Field(default_factory=list)
    """PagerDuty webhooks v3 signing secrets (several during rotation); empty = endpoint off."""
    destinations: DestinationsConfig = Field(default_factory=DestinationsConfig)
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    digest: DigestConfig = Field(default_factory=DigestConfig)
    """Schedule and size of the Slack digests (`slack_digest:<destination>` targets)."""

    @field_validator("receivers")
    @classmethod
    def _absolute_paths(cls, receivers: dict[str, ReceiverConfig]) -> dict[str, ReceiverConfig]:
        for path in receivers:
            if not path.startswith("/") or "{" in path:
                raise ValueError(f"receiver path {path!r} must be absolute and literal")
        return receivers

    @field_validator("sla")
    @classmethod
    def _every_severity(cls, sla: dict[Severity, float]) -> dict[Severity, float]:
        return {**_default_sla(), **sla}

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> "WebhookConfig":
        if not self.enabled:
            return self
        problems: list[str] = []
        if not self.receivers:
            problems.append(
                f"receivers: configure at least one, e.g. {DEFAULT_RECEIVER_PATH}: "
                "{auth: {bearer_token: ...}} (or auth: none)"
            )
        if self.api_auth is None:
            problems.append("api_auth: set credentials, or `none` to leave the API open")
        known: dict[str, set[str]] = {
            "pagerduty": set(self.destinations.pagerduty),
            "slack": set(self.destinations.slack),
            "zendesk": set(self.destinations.zendesk),
        }
        for route in self.routes:
            for target in route.targets:
                # A digest is a message to a Slack destination.
                section = "slack" if target.type == "slack_digest" else target.type
                if target.destination not in known[section]:
                    problems.append(
                        f"routes.{route.name}: {target.type} destination "
                        f"{target.destination!r} is not configured under "
                        f"destinations.{section}"
                    )
        if self.maintenance_slack and self.maintenance_slack not in self.destinations.slack:
            problems.append(f"maintenance_slack: no slack destination {self.maintenance_slack!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def route_specs(self) -> list[RouteSpec]:
        return [route.spec() for route in self.routes]
