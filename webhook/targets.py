"""Where deliveries go (Slack webhooks, PagerDuty routing keys, Zendesk accounts) and how the
dispatcher drains the outbox. Each destination is named; routes refer to it by that name.
"""

from typing import Annotated, Self

from pydantic import Field, SecretStr, model_validator

from tensafe_ops.model import HttpUrlText, Model, PerMinute, Seconds, SecretHttpUrl


class SlackDestination(Model):
    webhook_url: SecretHttpUrl
    """The incoming-webhook URL; its path is the credential, so it is a secret."""
    channel: str | None = None
    """Channel override (legacy webhooks only; app webhooks post to their own channel)."""
    rate_per_second: Annotated[float, Field(gt=0)] = 1.0
    """Slack allows about one message per second per webhook."""


class PagerDutyDestination(Model):
    routing_key: SecretStr
    """The Events API v2 integration key; it authenticates the event."""
    events_url: HttpUrlText = "https://events.pagerduty.com/v2/enqueue"
    rate_per_minute: PerMinute = 120
    """PagerDuty accepts about 120 events per minute per routing key."""


class ZendeskDestination(Model):
    base_url: HttpUrlText
    """e.g. https://tensafe.zendesk.com"""
    email: str
    token: SecretStr
    rate_per_minute: PerMinute = 200
    """By plan: Team 200, Growth/Professional 400, Enterprise 700, Enterprise Plus 2500."""


class DestinationsConfig(Model):
    slack: dict[str, SlackDestination] = {}
    pagerduty: dict[str, PagerDutyDestination] = {}
    zendesk: dict[str, ZendeskDestination] = {}


class DispatchConfig(Model):
    batch_size: Annotated[int, Field(ge=1, le=500)] = 20
    """Deliveries claimed per destination per round."""
    lease_seconds: Seconds = 60
    """How long a claim is held; a replica that dies mid-batch releases its rows after this."""
    max_attempts: Annotated[int, Field(ge=1)] = 10
    """Retryable failures are retried until this many attempts, then dead-lettered."""
    backoff_base: Seconds = 2.0
    backoff_cap: Seconds = 300.0
    poll_interval: Seconds = 1.0
    """How often an idle target looks for due deliveries."""
    request_timeout: Seconds = 10.0
    """Per-request timeout of every outbound call."""

    @model_validator(mode="after")
    def lease_outlasts_a_request(self) -> Self:
        # A send starts only while at least one request timeout of the lease is left.
        if self.lease_seconds < 2 * self.request_timeout:
            raise ValueError("lease_seconds must be at least twice request_timeout")
        return self


class IngestConfig(Model):
    """How journaled notifications are turned into alerts and deliveries (webhook.ingest)."""

    batch_size: Annotated[int, Field(ge=1, le=1000)] = 32
    """Notifications applied per transaction while none are arriving."""
    busy_batch_size: Annotated[int, Field(ge=1, le=1000)] = 4
    """... and while some are (one in flight, or one accepted within the last second): short
    stretches of CPU between awaits, so answering stays fast."""
    busy_receiving: Annotated[float, Field(ge=0)] = 1.0
    """Ingesting yields to receiving only while, on average over the last second, more than
    this many notifications were being answered at once (arrival rate x answer time) and a
    backlog is building; below it, every notification is ingested (and paged) as it
    arrives."""
    busy_share: Annotated[float, Field(gt=0, le=1)] = 0.1
    """While yielding, ingesting pauses so that it takes at most this share of the time:
    answering Alertmanager comes first; the journal holds the rest..."""
    yield_lag: Seconds = 10.0
    """... as long as the oldest waiting notification is younger than this. Beyond it,
    ingesting no longer pauses, so a sustained overload cannot grow the backlog for ever."""
    max_attempts: Annotated[int, Field(ge=1)] = 5
    """A notification that fails to ingest this many times alone is set aside as failed."""
    poll_interval: Seconds = 1.0
    """How often an idle replica looks for notifications other replicas journaled."""


SLACK_DIGEST_MAX_ALERTS = 48
"""Slack allows 50 blocks per message: a header, one section per alert and a context footer."""


class DigestConfig(Model):
    """How alerts routed to `slack_digest:<destination>` are collected into one message."""

    interval: Seconds = 3600.0
    """A destination's pending alerts are sent once the oldest has waited this long."""
    at_utc_hour: Annotated[int, Field(ge=0, le=23)] | None = None
    """Instead of `interval`: one digest a day at this hour (UTC) of everything pending."""
    max_alerts: Annotated[int, Field(ge=1, le=SLACK_DIGEST_MAX_ALERTS)] = 25
    """Alerts per Slack message; more pending alerts go out in further messages."""
    poll_interval: Seconds = 15.0
    """How often each replica looks for destinations whose digest is due."""
