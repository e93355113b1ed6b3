"""Operator API configuration: where Prometheus is, the checklist's PromQL, the daily record.

Example (YAML):

    operator:
      enabled: true
      prometheus_url: http://prometheus:9090
      read_auth: {bearer_token: !env OPS_READ_TOKEN}     # read-only: GET endpoints only
      record_at: "23:00"                                 # UTC, the checklist's nightly reports
      summary_slack: oncall                              # a webhook.destinations.slack name
      targets: {signups: 20, activations: 10}

The API's write credentials are the webhook's `api_auth` (one management API); `read_auth`
adds a token that may only read.
"""

from datetime import time
from string import Template
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from tensafe_ops.auth import Auth, Credentials
from tensafe_ops.model import Model, Seconds

_5XX = 'tensafe_http_requests_total{status=~"5.."}'
_P95 = "histogram_quantile(0.95, sum(rate(tensafe_inference_latency_seconds_bucket[5m])) by (le))"


class Queries(Model):
    """The checklist's PromQL (Parts 1, 3 and 5). `$job` and `$namespace` are replaced by the
    settings of the same name. Percentages are 0-100, latencies milliseconds."""

    uptime_24h: str = 'avg(avg_over_time(up{job="$job"}[24h])) * 100'
    error_rate_1h: str = f"sum(rate({_5XX}[1h])) / sum(rate(tensafe_http_requests_total[1h])) * 100"
    p95_latency: str = f"{_P95} * 1000"
    # `sum`, not the checklist's `count`: kube-state-metrics exports 0 for a pod that is not
    # ready, and counting series would count it as active.
    active_pods: str = 'sum(kube_pod_status_ready{namespace="$namespace", condition="true"})'
    gpu_utilisation: str = 'avg(DCGM_FI_DEV_GPU_UTIL{namespace="$namespace"})'
    api_up: str = 'min(up{job="$job"})'
    database_up: str = "min(pg_up)"
    redis_up: str = "min(redis_up)"
    requests_per_second: str = "sum(rate(tensafe_http_requests_total[5m]))"
    queue_depth: str = "sum(tensafe_request_queue_depth)"
    epsilon_spent: str = "max(tensafe_dp_epsilon_spent)"
    he_operations_per_hour: str = "sum(rate(tensafe_he_operations_total[1h])) * 3600"
    training_jobs_active: str = "sum(tensafe_training_jobs_active)"
    training_jobs_queued: str = "sum(tensafe_training_jobs_queued)"
    cpu: str = 'avg(rate(container_cpu_usage_seconds_total{namespace="$namespace"}[5m])) * 100'
    memory: str = (
        'avg(container_memory_working_set_bytes{namespace="$namespace"})'
        ' / avg(container_spec_memory_limit_bytes{namespace="$namespace"}) * 100'
    )
    disk: str = "max((1 - node_filesystem_avail_bytes / node_filesystem_size_bytes) * 100)"
    traffic_peak_7d: str = "max_over_time(sum(rate(tensafe_http_requests_total[5m]))[7d:5m])"
    error_count_24h: str = f"sum(increase({_5XX}[24h]))"
    error_rate_24h: str = (
        f"sum(increase({_5XX}[24h])) / sum(increase(tensafe_http_requests_total[24h])) * 100"
    )
    p95_latency_avg_24h: str = f"avg_over_time(({_P95})[24h:5m]) * 1000"
    # This service's own business gauges, as Prometheus scraped them: yesterday's values when
    # no daily record was stored yesterday.
    dau: str = "max(tensafe_usage_daily_active_users)"
    api_calls_24h: str = "max(tensafe_usage_api_calls_24h)"
    training_jobs_24h: str = "sum(max by (status) (tensafe_usage_training_jobs_24h))"


class Targets(Model):
    """Step 9's business targets (None: no target, the status says so)."""

    signups: Annotated[float, Field(ge=0)] | None = None
    activations: Annotated[float, Field(ge=0)] | None = None
    paid_conversions: Annotated[float, Field(ge=0)] | None = None
    churned: Annotated[float, Field(ge=0)] | None = 0
    """At most this many churned customers (the checklist's target is 0)."""
    mrr_change: float | None = 0
    """At least this MRR change over the UTC day (reporting currency)."""


class PagesConfig(Model):
    """The status pages (`operator.pages`): /status, /customers and /checklist, behind the
    API's credentials (see docs/pages.md)."""

    enabled: bool = True
    refresh_seconds: Annotated[float, Field(ge=0, le=3600)] = 30.0
    """How often an open page fetches fresh data: 0 (never) or at least 5 s (each refresh
    queries Prometheus)."""
    session_hours: Annotated[float, Field(gt=0, le=720)] = 12.0
    """How long a sign-in through /login lasts (a shift)."""
    trend_days: Annotated[int, Field(ge=2, le=400)] = 30
    """Days in the customers page's trend (daily records, today live)."""

    @field_validator("refresh_seconds")
    @classmethod
    def _not_too_often(cls, seconds: float) -> float:
        if 0 < seconds < 5:
            raise ValueError("0 (off) or at least 5 seconds")
        return seconds


class OperatorConfig(Model):
    enabled: bool = False
    prometheus_url: str | None = None
    """Base URL of the Prometheus that scrapes the product (and this service)."""
    prometheus_timeout: Seconds = 5.0
    store_timeout: Seconds = 10.0
    """Every state-database call of a request (and of the recorder) waits at most this; a
    request then answers 503, as the webhook's do after `webhook.store_timeout`."""
    prometheus_override: Literal["off", "loopback"] = "off"
    """Whether a client may name another Prometheus with `X-Prometheus-URL` (tensafe-admin's
    --prometheus-url): only loopback URLs, and only when set to `loopback` (the demo does)."""
    job: str = "tensafe-api"
    namespace: str = "tensafe"
    queries: Queries = Field(default_factory=Queries)
    api_auth: Auth | None = None
    """Credentials that may read and write; default: the webhook's `api_auth`."""
    read_auth: Credentials | None = None
    """Extra credentials accepted by GET endpoints only."""
    morning_at: time = time(8, 0)
    """UTC time the morning numbers are recorded (pulse compares against them)."""
    record_at: time = time(23, 0)
    """UTC time the day's record is stored (the checklist's "nightly reports")."""
    record_check_interval: Seconds = 60.0
    retention_days: Annotated[int, Field(ge=400)] = 400
    summary_slack: str | None = None
    """Slack destination (webhook.destinations.slack) the nightly summary is posted to."""
    handoff_slack: str | None = None
    """Slack destination of `oncall handoff --post` (default: summary_slack)."""
    night_shift_starts: time = time(20, 0)
    """UTC; the handoff names who is on call then as the night shift."""
    uptime_sla: Annotated[float, Field(gt=0, le=100)] = 99.9
    completed_job_statuses: tuple[str, ...] = ("succeeded", "completed")
    """Statuses of the usage database's training jobs (`tensafe_usage_training_jobs_24h`) that
    Step 9 counts as "Training Jobs Completed"."""
    pattern_min: Annotated[int, Field(ge=2)] = 3
    """Tickets in 24 h sharing a tag or a subject that make a recurring pattern."""
    targets: Targets = Field(default_factory=Targets)
    pages: PagesConfig = Field(default_factory=PagesConfig)
    """The status pages (/status, /customers, /checklist) behind the same credentials."""

    @field_validator("prometheus_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    def query(self, name: str) -> str:
        text: str = getattr(self.queries, name)
        return Template(text).safe_substitute(job=self.job, namespace=self.namespace)
