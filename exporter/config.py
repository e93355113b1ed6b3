"""Exporter configuration: one section per source, validated strictly."""

from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from tensafe_ops.model import Model, PerMinute, Seconds

Priority = Literal["urgent", "high", "normal", "low"]


class SourceConfig(Model):
    enabled: bool = True
    interval: Seconds = 60.0
    """Seconds between refreshes."""
    timeout: Seconds = 120.0
    """Wall-clock budget of one refresh; past it the refresh fails and old values stay."""
    request_timeout: Seconds = 15.0
    rate_limit_per_minute: PerMinute = 300.0
    max_retries: Annotated[int, Field(ge=0, le=20)] = 4


def _default_sla() -> dict[Priority, float]:
    return {"urgent": 3600.0, "high": 14400.0, "normal": 86400.0, "low": 172800.0}


class ZendeskConfig(SourceConfig):
    subdomain: str = "tensafe"
    base_url: str | None = None
    """Override the https://<subdomain>.zendesk.com origin (a proxy or the sandbox)."""
    email: str = "ops@tensafe.example"
    token: SecretStr = SecretStr("")
    rate_limit_per_minute: PerMinute = 10.0  # the incremental export endpoint's own limit
    interval: Seconds = 60.0
    page_size: Annotated[int, Field(ge=1, le=1000)] = 1000
    account_key: str = "external_id"
    """Zendesk organization field that holds the product account id."""
    first_response_sla: dict[Priority, Seconds] = Field(default_factory=_default_sla)
    """First-response targets per priority (calendar seconds): p1 1h, p2 4h, p3 24h, p4 48h."""
    unanswered_alert_after: Seconds = 86400.0
    top_tags: Annotated[int, Field(ge=0, le=50)] = 10


def _default_ack_targets() -> dict[Literal["high", "low"], float]:
    return {"high": 900.0, "low": 3600.0}


class PagerDutyConfig(SourceConfig):
    base_url: str = "https://api.pagerduty.com"
    token: SecretStr = SecretStr("")
    rate_limit_per_minute: PerMinute = 900.0
    stats_window_days: Annotated[int, Field(ge=1, le=90)] = 7
    max_oncall_series: Annotated[int, Field(ge=0, le=1000)] = 50
    acknowledge_targets: dict[Literal["high", "low"], Seconds] = Field(
        default_factory=_default_ack_targets
    )
    """Respond-within targets per incident urgency: high pages are the critical alert class
    (respond < 15 min), low ones the warning class (< 1 h), as the webhook's SLAs."""


class MrrRules(Model):
    count_past_due: bool = True
    past_due_grace_days: Annotated[int, Field(ge=0)] = 30
    subtract_discounts: bool = True
    keep_cancel_at_period_end: bool = True
    count_paused_collection: bool = False
    """Count active subscriptions whose payment collection is paused (`pause_collection`)."""
    reporting_currency: str = "usd"
    fx_rates: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    """Static rates: 1 unit of the key currency in reporting currency, e.g. {eur: 1.08}."""


class StripeConfig(SourceConfig):
    base_url: str = "https://api.stripe.com"
    api_key: SecretStr = SecretStr("")
    rate_limit_per_minute: PerMinute = 1500.0
    account_key: str = "account_id"
    """Stripe customer metadata key holding the product account id."""
    mrr: MrrRules = Field(default_factory=MrrRules)
    enterprise_mrr_threshold: Annotated[float, Field(ge=0)] = 5000.0
    max_plans: Annotated[int, Field(ge=1, le=500)] = 50
    full_resync_interval: Seconds = 86400.0
    """Even with Events sync, re-list everything this often to heal drift."""


class UsageQueries(Model):
    dau: str = "SELECT COUNT(DISTINCT user_id) FROM api_calls WHERE called_at >= :since_1d"
    wau: str = "SELECT COUNT(DISTINCT user_id) FROM api_calls WHERE called_at >= :since_7d"
    mau: str = "SELECT COUNT(DISTINCT user_id) FROM api_calls WHERE called_at >= :since_30d"
    api_calls_24h: str = "SELECT COUNT(*) FROM api_calls WHERE called_at >= :since_1d"
    training_jobs_24h: str = (
        "SELECT status, COUNT(*) FROM training_jobs WHERE created_at >= :since_1d GROUP BY status"
    )
    signups_24h: str = "SELECT COUNT(*) FROM users WHERE created_at >= :since_1d"
    activations_24h: str = "SELECT COUNT(*) FROM users WHERE activated_at >= :since_1d"
    last_api_call_per_account: str = (
        "SELECT account_id, MAX(called_at) FROM api_calls GROUP BY account_id"
    )
    seats_per_account: str = (
        "SELECT account_id, COUNT(*) FROM seats WHERE removed_at IS NULL GROUP BY account_id"
    )
    seats_removed_30d_per_account: str = (
        "SELECT account_id, COUNT(*) FROM seats WHERE removed_at >= :since_30d GROUP BY account_id"
    )
    accounts: str = "SELECT account_id, name, tier FROM accounts"
    """Rows of (account_id, name, tier)."""


class UsageConfig(SourceConfig):
    url: SecretStr = SecretStr("")
    """SQLAlchemy async URL of the product database (it may carry a password)."""
    queries: UsageQueries = Field(default_factory=UsageQueries)


class HealthWeights(Model):
    no_api_calls_7d: int = 45
    no_api_calls_3d: int = 20
    tickets_rising: int = 20
    ticket_breaching_sla: int = 10
    payment_failed: int = 30
    seats_removed: int = 15
    seats_removed_quarter: int = 25


class HealthConfig(SourceConfig):
    interval: Seconds = 60.0
    weights: HealthWeights = Field(default_factory=HealthWeights)
    at_risk_below: Annotated[int, Field(ge=0, le=100)] = 40
    watch_below: Annotated[int, Field(ge=0, le=100)] = 70
    tickets_rising_ratio: Annotated[float, Field(gt=0)] = 2.0
    tickets_rising_min: Annotated[int, Field(ge=0)] = 3
    seats_removed_share: Annotated[float, Field(gt=0, le=1)] = 0.25
    per_customer_cap: Annotated[int, Field(ge=0, le=5000)] = 200

    @model_validator(mode="after")
    def _bands_ordered(self) -> "HealthConfig":
        if self.at_risk_below > self.watch_below:
            raise ValueError("at_risk_below must not exceed watch_below")
        return self


class ExporterConfig(Model):
    zendesk: ZendeskConfig = Field(default_factory=ZendeskConfig)
    pagerduty: PagerDutyConfig = Field(default_factory=PagerDutyConfig)
    stripe: StripeConfig = Field(default_factory=StripeConfig)
    usage: UsageConfig = Field(default_factory=UsageConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
