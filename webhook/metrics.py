"""The webhook's self-metrics: event counters of this process plus store gauges.

Counters count what THIS replica did (each event is observed by exactly one replica: the one
that committed it), so sums over replicas are exact. Gauges describe the shared store and are
read by the sweep loop every `sweep_interval`; `collect()` only reads memory.
"""

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric

from webhook.dispatch import DeliveryOutcome, DeliveryStats
from webhook.journal import Backlog
from webhook.outbox import Target
from webhook.routing import SEVERITIES
from webhook.sla import ACK_BUCKETS
from webhook.store import Gauges

TARGETS: tuple[Target, ...] = ("pagerduty", "slack", "zendesk")
DELIVERY_OUTCOMES: tuple[DeliveryOutcome, ...] = ("sent", "retried", "dead")
CACHED = " Read from the store every sweep interval."


@dataclass
class AckHistogram:
    buckets: tuple[float, ...] = ACK_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(ACK_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(self.buckets):
            if seconds <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        running = 0
        pairs: list[tuple[str, float]] = []
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            pairs.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return pairs


@dataclass
class WebhookStats:
    """Mutable counters fed by the handlers and the sweep (the dispatcher keeps its own)."""

    received: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicates: int = 0
    breaches: Counter[str] = field(default_factory=Counter)
    stale_closed: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    pagerduty_webhooks: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    ingested: int = 0
    ingest_failures: int = 0
    ack_seconds: dict[str, AckHistogram] = field(
        default_factory=lambda: {s: AckHistogram() for s in SEVERITIES}
    )
    gauges: Gauges | None = None
    backlog: Backlog | None = None

    def record_ack(self, severity: str, seconds: float) -> None:
        self.ack_seconds.setdefault(severity, AckHistogram()).observe(seconds)


def _counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels)


class WebhookCollector:
    """Yields fresh families on every scrape from `WebhookStats` (no store access)."""

    def __init__(
        self,
        stats: WebhookStats,
        delivery_stats: DeliveryStats,
        owned: Callable[[], Iterable[tuple[str, str]]] = lambda: (),
    ) -> None:
        self.stats = stats
        self.delivery_stats = delivery_stats
        self.owned = owned

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield from self._gauges()
        yield from self._backlog()
        owner = GaugeMetricFamily(
            "tensafe_webhook_destination_owned",
            "1 for each destination this replica sends to. With PostgreSQL one replica at a "
            "time sends to a destination, so its vendor rate limit holds for the deployment.",
            labels=["target", "destination"],
        )
        for target, destination in sorted(self.owned()):
            owner.add_metric([target, destination], 1.0)
        yield owner
        ack = HistogramMetricFamily(
            "tensafe_webhook_time_to_acknowledge_seconds",
            "Seconds from first receipt of a firing alert to its acknowledgement (API or "
            "PagerDuty), by severity.",
            labels=["severity"],
        )
        for severity, histogram in sorted(self.stats.ack_seconds.items()):
            ack.add_metric([severity], histogram.cumulative(), histogram.total)
        yield ack

    def _counters(self) -> Iterator[Metric]:
        stats = self.stats
        received = _counter(
            "tensafe_webhook_alerts_received",
            "Alerts in accepted Alertmanager notifications (duplicates included), by effective "
            "severity and alert status.",
            ["severity", "status"],
        )
        for (severity, status), n in sorted(stats.received.items()):
            received.add_metric([severity, status], n)
        yield received
        duplicates = _counter(
            "tensafe_webhook_duplicate_notifications_ignored",
            "Alerts whose (fingerprint, startsAt, status) was already stored: HA duplicates, "
            "retries and repeat notifications. They create no record and no page.",
            [],
        )
        duplicates.add_metric([], stats.duplicates)
        yield duplicates
        breaches = _counter(
            "tensafe_webhook_sla_breaches",
            "Alerts not acknowledged or resolved by their respond-by time, by severity.",
            ["severity"],
        )
        for severity in SEVERITIES:
            breaches.add_metric([severity], stats.breaches[severity])
        yield breaches
        stale = _counter(
            "tensafe_webhook_stale_alerts_closed",
            "Firing alerts closed by the sweep because no notification came within the "
            "staleness (silenced or truncated), by severity.",
            ["severity"],
        )
        for severity in SEVERITIES:
            stale.add_metric([severity], stats.stale_closed[severity])
        yield stale
        delivered = _counter(
            "tensafe_webhook_deliveries",
            "Outbound delivery attempts by target and outcome (sent, retried, dead).",
            ["target", "outcome"],
        )
        # Every series from the start, so rate() sees the first delivery of each kind.
        deliveries = self.delivery_stats.deliveries
        for target in TARGETS:
            for result in DELIVERY_OUTCOMES:
                delivered.add_metric([target, result], deliveries[(target, result)])
        yield delivered
        rejected = _counter(
            "tensafe_webhook_rejected_requests",
            "Requests answered with an error, by reason (bad_request, unauthorized, "
            "too_large, unavailable, bad_signature).",
            ["reason"],
        )
        for reason, n in sorted(stats.rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        pd = _counter(
            "tensafe_webhook_pagerduty_webhooks",
            "Verified PagerDuty webhooks by outcome (acknowledged, already_answered, "
            "unknown_incident, predates_alert, duplicate, ignored).",
            ["outcome"],
        )
        for kind, n in sorted(stats.pagerduty_webhooks.items()):
            pd.add_metric([kind], n)
        yield pd
        accepted = _counter(
            "tensafe_webhook_notifications_accepted",
            "Alertmanager notifications stored in the journal and answered 2xx.",
            [],
        )
        accepted.add_metric([], stats.accepted)
        yield accepted
        ingested = _counter(
            "tensafe_webhook_notifications_ingested",
            "Journaled notifications turned into alert records and deliveries (by this "
            "replica; any replica may ingest what another accepted).",
            [],
        )
        ingested.add_metric([], stats.ingested)
        yield ingested
        failures = _counter(
            "tensafe_webhook_notifications_set_aside",
            "Journaled notifications that could not be ingested and were set aside as failed "
            "(kept in the journal for a human).",
            [],
        )
        failures.add_metric([], stats.ingest_failures)
        yield failures

    def _backlog(self) -> Iterator[Metric]:
        backlog = self.stats.backlog
        if backlog is None:
            return
        pending = GaugeMetricFamily(
            "tensafe_webhook_journal_pending",
            "Accepted notifications not yet ingested." + CACHED,
        )
        pending.add_metric([], backlog.pending)
        yield pending
        failed = GaugeMetricFamily(
            "tensafe_webhook_journal_failed",
            "Notifications set aside as failed, waiting for a human." + CACHED,
        )
        failed.add_metric([], backlog.failed)
        yield failed
        lag = GaugeMetricFamily(
            "tensafe_webhook_journal_oldest_pending_age_seconds",
            "Age of the oldest notification not yet ingested, at the last sweep; 0 when none "
            "is pending." + CACHED,
        )
        oldest = backlog.oldest_received_at
        lag.add_metric([], max(0.0, (backlog.read_at - oldest).total_seconds()) if oldest else 0.0)
        yield lag

    def _gauges(self) -> Iterator[Metric]:
        gauges = self.stats.gauges
        if gauges is None:
            return
        open_alerts = GaugeMetricFamily(
            "tensafe_webhook_open_alerts",
            "Firing alerts by severity and whether they are acknowledged." + CACHED,
            labels=["severity", "acknowledged"],
        )
        for severity in SEVERITIES:
            for acked in (False, True):
                n = gauges.open_alerts.get((severity, acked), 0)
                open_alerts.add_metric([severity, "true" if acked else "false"], n)
        yield open_alerts
        overdue = GaugeMetricFamily(
            "tensafe_webhook_alerts_overdue",
            "Firing, unacknowledged alerts past their respond-by time, by severity." + CACHED,
            labels=["severity"],
        )
        for severity in SEVERITIES:
            overdue.add_metric([severity], gauges.overdue.get(severity, 0))
        yield overdue
        depth = GaugeMetricFamily(
            "tensafe_webhook_outbox_depth",
            "Deliveries waiting to be sent (pending, including ones backing off), by target."
            + CACHED,
            labels=["target"],
        )
        dead = GaugeMetricFamily(
            "tensafe_webhook_dead_letters",
            "Deliveries that failed permanently and wait for a manual retry, by target." + CACHED,
            labels=["target"],
        )
        for target in TARGETS:
            depth.add_metric([target], gauges.outbox_depth.get(target, 0))
            dead.add_metric([target], gauges.dead_letters.get(target, 0))
        yield depth
        yield dead
