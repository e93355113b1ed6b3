"""AlertViews for the delivery tests: a realistic critical alert, tweakable per test."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from webhook.outbox import AlertView

STARTED = datetime(2026, 11, 27, 11, 58, 4, tzinfo=UTC)

HIGH_ERROR_RATE = AlertView(
    alert_id=7,
    fingerprint="cba3ddb8f8c01bd6",
    alertname="HighErrorRate",
    status="firing",
    severity="critical",
    labels={
        "alertname": "HighErrorRate",
        "severity": "critical",
        "service": "checkout",
        "namespace": "payments",
        "instance": "10.0.3.17:8080",
    },
    annotations={
        "summary": "checkout 5xx ratio above 5% on 10.0.3.17:8080",
        "description": "5xx ratio has been above 5% for 5 minutes.",
        "runbook_url": "https://runbooks.example.com/checkout/high-error-rate",
        "immediate_action": "Roll back the last checkout deploy.",
    },
    starts_at=STARTED,
    ends_at=None,
    generator_url="http://prometheus-0:9090/graph?g0.expr=job%3Arequest_errors%3Aratio5m",
    external_url="http://alertmanager.monitoring.svc:9093",
    respond_by=STARTED + timedelta(minutes=15),
)


def alert(**changes: Any) -> AlertView:
    return replace(HIGH_ERROR_RATE, **changes)
