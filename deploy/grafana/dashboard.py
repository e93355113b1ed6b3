"""Generates deploy/grafana/tensafe-ops.json (run `make dashboard`; a test fails when they differ).

The checklist's four panels (Part 5) with its PromQL and its thresholds as colours, then a row
each for support, incidents, revenue, customers and alert response on tensafe-ops' own
metrics. kube-prometheus-stack conventions: a `$datasource` variable used by every panel and
query, a fixed uid, tags, `$__rate_interval`, a unit and a description on every panel.
Built with grafana-foundation-sdk for a Grafana 11 target (pinned in pyproject.toml).
"""

import json
import sys
from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import (
    dashboard,
    gauge,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

UID = "tensafe-ops"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
NS = 'namespace="tensafe"'

Steps = Sequence[tuple[float | None, str]]
GOOD: Steps = ((None, "green"),)


class Layout:
    """Numbers panels in order (Grafana wants unique ids)."""

    def __init__(self) -> None:
        self.next_id = 0

    def id(self) -> int:
        self.next_id += 1
        return self.next_id


LAYOUT = Layout()


def query(expr: str, legend: str = "", *, instant: bool = False) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(expr).datasource(DATASOURCE)
    target = target.legend_format(legend or "__auto")
    if instant:
        target = target.instant().format(PromQueryFormat.TABLE)
    return target


def lettered(targets: Sequence[prometheus.Dataquery]) -> list[prometheus.Dataquery]:
    """Targets with the refIds Grafana expects: A, B, C..."""
    return [target.ref_id(chr(ord("A") + i)) for i, target in enumerate(targets)]


def thresholds(steps: Steps) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def _common(panel: Any, title: str, description: str, unit: str, width: int, height: int) -> Any:
    return (
        panel.id(LAYOUT.id())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
    )


def stat_panel(
    title: str,
    description: str,
    unit: str,
    targets: list[prometheus.Dataquery],
    steps: Steps = GOOD,
    *,
    mappings: dict[str, tuple[str, str]] | None = None,
    width: int = 4,
    height: int = 4,
) -> stat.Panel:
    panel = _common(stat.Panel(), title, description, unit, width, height)
    panel = panel.targets(lettered(targets)).thresholds(thresholds(steps))
    if mappings:
        results = {k: ValueMappingResult(text=t, color=c) for k, (t, c) in mappings.items()}
        panel = panel.mappings([ValueMap(options=results)])
    return panel  # type: ignore[no-any-return]


def gauge_panel(
    title: str,
    description: str,
    unit: str,
    expr: str,
    steps: Steps,
    *,
    maximum: float = 100,
    width: int = 6,
) -> gauge.Panel:
    panel = _common(gauge.Panel(), title, description, unit, width, 6)
    return panel.targets(lettered([query(expr)])).thresholds(thresholds(steps)).min(0).max(maximum)  # type: ignore[no-any-return]


def series_panel(
    title: str,
    description: str,
    unit: str,
    targets: list[prometheus.Dataquery],
    steps: Steps = GOOD,
    *,
    width: int = 8,
) -> timeseries.Panel:
    panel = _common(timeseries.Panel(), title, description, unit, width, 7)
    return panel.targets(lettered(targets)).thresholds(thresholds(steps))  # type: ignore[no-any-return]


def table_panel(
    title: str, description: str, unit: str, expr: str, *, width: int = 24
) -> table.Panel:
    panel = _common(table.Panel(), title, description, unit, width, 8)
    return panel.targets(lettered([query(expr, instant=True)]))  # type: ignore[no-any-return]


def service_health() -> list[Any]:
    up_down = {"1": ("UP", "green"), "0": ("DOWN", "red")}
    return [
        stat_panel(
            "API status",
            'Whether Prometheus can scrape the TenSafe API (checklist: up{job="tensafe-api"}); '
            "DOWN pages as TenSafeAPIDown.",
            "none",
            [query('min(up{job="tensafe-api"})')],
            ((None, "red"), (1, "green")),
            mappings=up_down,
            width=3,
        ),
        stat_panel(
            "DB status",
            "PostgreSQL reachable from its exporter (pg_up); DOWN pages as DatabaseDown.",
            "none",
            [query("min(pg_up)")],
            ((None, "red"), (1, "green")),
            mappings=up_down,
            width=3,
        ),
        stat_panel(
            "Redis status",
            "Redis reachable from its exporter (redis_up).",
            "none",
            [query("min(redis_up)")],
            ((None, "red"), (1, "green")),
            mappings=up_down,
            width=3,
        ),
        stat_panel(
            "API uptime (24h)",
            "Share of scrapes of the API that succeeded over 24 hours. "
            "Healthy > 99.9 %, warning 99.5-99.9 %, critical < 99.5 %.",
            "percentunit",
            [query('avg_over_time(up{job="tensafe-api"}[24h])')],
            ((None, "red"), (0.995, "orange"), (0.999, "green")),
        ),
        stat_panel(
            "Active pods",
            "Ready API pods. sum(), not the checklist's count(): kube-state-metrics exports "
            "a 0/1 series for every pod. Healthy 3+, warning 2, critical < 2.",
            "short",
            [query(f'sum(kube_pod_status_ready{{{NS}, condition="true"}})')],
            ((None, "red"), (2, "orange"), (3, "green")),
        ),
        stat_panel(
            "Queue depth",
            "Requests waiting for a worker (tensafe_request_queue_depth); > 100 is QueueBacklog.",
            "short",
            [query("sum(tensafe_request_queue_depth)")],
            ((None, "green"), (101, "red")),
        ),
        stat_panel(
            "GPU nodes active",
            "GPUs reporting utilisation through DCGM.",
            "short",
            [query(f"count(DCGM_FI_DEV_GPU_UTIL{{{NS}}})")],
            ((None, "red"), (1, "green")),
            width=3,
        ),
    ]


def request_metrics() -> list[Any]:
    requests = "tensafe_http_requests_total"
    return [
        series_panel(
            "Requests/sec",
            "API requests per second.",
            "reqps",
            [query(f"sum(rate({requests}[$__rate_interval]))", "requests/s")],
        ),
        series_panel(
            "Error rate",
            "Share of API requests answered 5xx. Healthy < 0.1 %, warning 0.1-1 %, critical "
            "> 1 %; HighErrorRate pages above 5 %.",
            "percent",
            [
                query(
                    f'sum(rate({requests}{{status=~"5.."}}[$__rate_interval])) / '
                    f"sum(rate({requests}[$__rate_interval])) * 100",
                    "5xx %",
                )
            ],
            ((None, "green"), (0.1, "orange"), (1, "red")),
        ),
        series_panel(
            "P95 latency",
            "95th percentile of inference latency. Healthy < 100 ms, warning 100-200 ms, "
            "critical > 200 ms (HighLatencyP95).",
            "s",
            [
                query(
                    "histogram_quantile(0.95, sum by (le) "
                    "(rate(tensafe_inference_latency_seconds_bucket[$__rate_interval])))",
                    "p95",
                )
            ],
            ((None, "green"), (0.1, "orange"), (0.2, "red")),
        ),
    ]


def privacy_training() -> list[Any]:
    return [
        gauge_panel(
            "DP epsilon spent",
            "Highest differential-privacy epsilon spent by a tenant, against the budget of 10 "
            "(PrivacyBudgetExhausted pages above it).",
            "none",
            "max(tensafe_dp_epsilon_spent)",
            ((None, "green"), (8, "orange"), (10, "red")),
            maximum=10,
            width=8,
        ),
        stat_panel(
            "HE operations",
            "Homomorphic-encryption operations per hour (over the last hour).",
            "short",
            [query("sum(rate(tensafe_he_operations_total[1h])) * 3600", "ops/hour")],
            width=8,
            height=6,
        ),
        stat_panel(
            "Training jobs",
            "Training jobs running and waiting.",
            "short",
            [
                query("sum(tensafe_training_jobs_active)", "active"),
                query("sum(tensafe_training_jobs_queued)", "queued"),
            ],
            width=8,
            height=6,
        ),
    ]


def infrastructure() -> list[Any]:
    containers = f'{NS}, container!=""'
    return [
        gauge_panel(
            "CPU usage",
            "Average CPU of the tensafe containers, % of a core. Scale up above 70 % "
            "(Step 8); HighCPU above 80 %.",
            "percent",
            f"avg(rate(container_cpu_usage_seconds_total{{{containers}}}[$__rate_interval])) * 100",
            ((None, "green"), (70, "orange"), (80, "red")),
        ),
        gauge_panel(
            "Memory usage",
            "Average working set of the tensafe containers, % of their limit. Scale up above "
            "80 % (Step 8); HighMemory above 85 %.",
            "percent",
            f"avg(container_memory_working_set_bytes{{{containers}}}) / "
            f"avg(container_spec_memory_limit_bytes{{{containers}}} > 0) * 100",
            ((None, "green"), (80, "orange"), (85, "red")),
        ),
        gauge_panel(
            "GPU utilization",
            "Average GPU utilisation (DCGM). Healthy < 80 %, warning 80-90 %, critical > 90 %.",
            "percent",
            f"avg(DCGM_FI_DEV_GPU_UTIL{{{NS}}})",
            ((None, "green"), (80, "orange"), (90, "red")),
        ),
        gauge_panel(
            "Disk usage",
            "Fullest data volume; clean up or expand above 80 % (DiskSpace).",
            "percent",
            '(1 - min(node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"} / '
            'node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"})) * 100',
            ((None, "green"), (70, "orange"), (80, "red")),
        ),
        series_panel(
            "Network",
            "Bytes per second received and sent by the nodes.",
            "Bps",
            [
                query("sum(rate(node_network_receive_bytes_total[$__rate_interval]))", "in"),
                query("sum(rate(node_network_transmit_bytes_total[$__rate_interval]))", "out"),
            ],
            width=24,
        ),
    ]


def achievement_panels(title: str, description: str, ratio: str, by: str) -> list[Any]:
    """A half-width panel of an SLA achievement ratio per `by`, for the 7-day and the 24-hour
    window; red below 95 %, the target of the *SLAAchievementLow alerts. `description` says
    what the share is of, with `{window}` for the window."""
    return [
        series_panel(
            f"{title} ({window})",
            description.format(window=window),
            "percentunit",
            [query(f'min by ({by}) ({ratio}{{window="{window}"}})', f"{{{{{by}}}}}")],
            ((None, "red"), (0.95, "green")),
            width=12,
        )
        for window in ("7d", "24h")
    ]


def support() -> list[Any]:
    achievement = achievement_panels(
        "First-response SLA achievement",
        "Share of the tickets first answered in the last {window} whose first response (agent "
        "reply, or solve without one) came within the priority's target. No line for a "
        "priority without any.",
        "tensafe_zendesk_first_response_sla_achievement_ratio",
        "priority",
    )
    return [
        series_panel(
            "Open tickets by priority",
            "Open Zendesk tickets (new, open, pending, hold) by priority.",
            "short",
            [query("sum by (priority) (tensafe_zendesk_open_tickets)", "{{priority}}")],
            width=6,
        ),
        series_panel(
            "SLA breaches",
            "Open tickets without an agent reply past their first-response target "
            "(P1 1 h, P2 4 h, P3 24 h, P4 48 h).",
            "short",
            [query("sum by (priority) (tensafe_zendesk_sla_breaching_tickets)", "{{priority}}")],
            ((None, "green"), (1, "red")),
            width=6,
        ),
        stat_panel(
            "Unanswered > 24 h",
            "Open tickets with no agent reply for more than 24 hours.",
            "short",
            [query("sum(tensafe_zendesk_long_unanswered_tickets)")],
            ((None, "green"), (1, "red")),
            width=6,
            height=7,
        ),
        stat_panel(
            "Oldest unanswered",
            "Age of the oldest open ticket without an agent reply, per priority.",
            "s",
            [
                query(
                    "max by (priority) (tensafe_zendesk_oldest_unanswered_age_seconds)",
                    "{{priority}}",
                )
            ],
            width=6,
            height=7,
        ),
        *achievement,
    ]


def incidents() -> list[Any]:
    ack = "tensafe_pagerduty_time_to_acknowledge_seconds"
    resolve = "tensafe_pagerduty_time_to_resolve_seconds"
    achievement = achievement_panels(
        "Acknowledged within target",
        "Share of the incidents created in the last {window} that were acknowledged (or "
        "resolved without an acknowledgement) within their urgency's target: high 15 min, "
        "low 1 h. No line for an urgency without any.",
        "tensafe_pagerduty_acknowledge_achievement_ratio",
        "urgency",
    )
    return [
        series_panel(
            "Open incidents by urgency",
            "Triggered and acknowledged PagerDuty incidents, by urgency and status.",
            "short",
            [
                query(
                    "sum by (urgency, status) (tensafe_pagerduty_open_incidents)",
                    "{{urgency}} {{status}}",
                )
            ],
        ),
        series_panel(
            "Time to acknowledge / resolve",
            "Median and 95th percentile over incidents of the last 7 days.",
            "s",
            [
                query(f'max({ack}{{quantile="0.5"}})', "ack p50"),
                query(f'max({ack}{{quantile="0.95"}})', "ack p95"),
                query(f'max({resolve}{{quantile="0.5"}})', "resolve p50"),
                query(f'max({resolve}{{quantile="0.95"}})', "resolve p95"),
            ],
        ),
        stat_panel(
            "Oldest unacknowledged",
            "Age of the oldest triggered incident; IncidentUnacknowledged pages past 15 minutes.",
            "s",
            [query("max(tensafe_pagerduty_oldest_unacknowledged_incident_age_seconds)")],
            ((None, "green"), (900, "red")),
            width=4,
            height=7,
        ),
        stat_panel(
            "Incidents opened (24h)",
            "Incidents created in the last 24 hours.",
            "short",
            [query('max(tensafe_pagerduty_incidents_opened{window="24h"})')],
            width=4,
            height=7,
        ),
        *achievement,
    ]


def revenue() -> list[Any]:
    return [
        stat_panel(
            "MRR",
            "Monthly recurring revenue, reporting currency.",
            "currencyUSD",
            [query("sum(tensafe_stripe_mrr_converted)")],
            width=6,
            height=7,
        ),
        series_panel(
            "MRR movements today",
            "MRR moved since 00:00 UTC: new, expansion, contraction, churn, reactivation.",
            "currencyUSD",
            [query("sum by (kind) (tensafe_stripe_mrr_movement)", "{{kind}}")],
            width=6,
        ),
        series_panel(
            "Failed payments (24h)",
            "invoice.payment_failed events in the last 24 hours, and subscriptions past due.",
            "short",
            [
                query("sum(tensafe_stripe_failed_payments_24h)", "failed payments"),
                query("sum(tensafe_stripe_past_due_subscriptions)", "past due"),
            ],
            width=6,
        ),
        stat_panel(
            "Enterprise customers",
            "Customers at or above the enterprise MRR threshold ($5K).",
            "short",
            [query("sum(tensafe_stripe_enterprise_customers)")],
            width=6,
            height=7,
        ),
    ]


def customers() -> list[Any]:
    return [
        series_panel(
            "Health bands",
            "Customers per health band: at risk (< 40), watch (< 70), healthy; the bounds are "
            "exporter.health.at_risk_below and watch_below (defaults shown).",
            "short",
            [query("sum by (band) (tensafe_health_customers)", "{{band}}")],
            width=6,
        ),
        stat_panel(
            "At risk",
            "Customers in the at_risk band: score under exporter.health.at_risk_below (40).",
            "short",
            [query("sum(tensafe_health_at_risk_customers)", "customers")],
            ((None, "green"), (1, "orange")),
            width=3,
            height=7,
        ),
        stat_panel(
            "At-risk MRR",
            "Stripe MRR of the at-risk customers (reporting currency).",
            "currencyUSD",
            [query("sum(tensafe_health_at_risk_mrr)")],
            width=3,
            height=7,
        ),
        series_panel(
            "Churn signals",
            "Customers whose score is lowered by each signal (no API calls, tickets rising, "
            "failed payment, seats removed...).",
            "short",
            [query("sum by (signal) (tensafe_health_churn_signal_customers)", "{{signal}}")],
            width=12,
        ),
        table_panel(
            "Enterprise customer health",
            "Health score of each enterprise customer, lowest first (at risk below "
            "exporter.health.at_risk_below, default 40).",
            "short",
            "sort(tensafe_health_score)",
        ),
    ]


def alert_response() -> list[Any]:
    return [
        series_panel(
            "Open alerts",
            "Firing alerts held by the webhook, by class and whether acknowledged.",
            "short",
            [
                query(
                    "max by (severity, acknowledged) (tensafe_webhook_open_alerts)",
                    "{{severity}} ack={{acknowledged}}",
                )
            ],
        ),
        series_panel(
            "Respond-by breaches",
            "Alerts unanswered past their respond-by now, and breaches counted over the range.",
            "short",
            [
                query("max by (severity) (tensafe_webhook_alerts_overdue)", "{{severity}} overdue"),
                query(
                    "sum by (severity) (increase(tensafe_webhook_sla_breaches_total[$__range]))",
                    "{{severity}} breached",
                ),
            ],
            ((None, "green"), (1, "red")),
        ),
        series_panel(
            "Time to acknowledge",
            "95th percentile of first receipt to acknowledgement, by class "
            "(targets: critical 15 min, warning 1 h, info 24 h).",
            "s",
            [
                query(
                    "histogram_quantile(0.95, sum by (severity, le) "
                    "(rate(tensafe_webhook_time_to_acknowledge_seconds_bucket[$__rate_interval])))",
                    "{{severity}} p95",
                )
            ],
        ),
        series_panel(
            "Deliveries",
            "Sends to PagerDuty, Slack and Zendesk per second by outcome.",
            "ops",
            [
                query(
                    "sum by (target, outcome) "
                    "(rate(tensafe_webhook_deliveries_total[$__rate_interval]))",
                    "{{target}} {{outcome}}",
                )
            ],
            width=12,
        ),
        series_panel(
            "Dead letters and outbox",
            "Deliveries failed for good (waiting for a retry) and pending, per target.",
            "short",
            [
                query("max by (target) (tensafe_webhook_dead_letters)", "{{target}} dead"),
                query("max by (target) (tensafe_webhook_outbox_depth)", "{{target}} pending"),
            ],
            ((None, "green"), (1, "red")),
            width=12,
        ),
        table_panel(
            "Alerts firing in Prometheus",
            "Every alert Prometheus is firing now, with its labels.",
            "none",
            'ALERTS{alertstate="firing"}',
        ),
    ]


ROWS = (
    ("Service health", service_health),
    ("Request metrics", request_metrics),
    ("Privacy & training", privacy_training),
    ("Infrastructure", infrastructure),
    ("Support", support),
    ("Incidents", incidents),
    ("Revenue", revenue),
    ("Customers", customers),
    ("Alert response", alert_response),
)


def build() -> dict[str, Any]:
    LAYOUT.next_id = 0
    board = (
        dashboard.Dashboard("TenSafe operations")
        .uid(UID)
        .description(
            "The TenSafe daily operations checklist: service health, requests, privacy and "
            "training, infrastructure, support, incidents, revenue, customers and alert "
            "response. Generated by deploy/grafana/dashboard.py."
        )
        .tags(["tensafe", "tensafe-ops", "checklist"])
        .timezone("utc")
        .time("now-6h", "now")
        .refresh("1m")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    for title, panels in ROWS:
        board = board.with_row(dashboard.Row(title).id(LAYOUT.id()))
        for panel in panels():
            board = board.with_panel(panel)
    encoded: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return encoded


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
