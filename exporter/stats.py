"""Live self-metrics about the exporter's own work: small, rendered on every scrape."""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

SOURCES = ("zendesk", "pagerduty", "stripe", "usage", "health")


@dataclass
class SourceStatus:
    up: bool = False
    last_success: float | None = None
    last_duration: float | None = None
    sync_done: int = 0
    sync_total: int | None = None


@dataclass
class UpstreamStats:
    """Mutable counters fed by sources and the runner; read by `SelfCollector`."""

    demo: bool = False
    status: dict[str, SourceStatus] = field(default_factory=dict)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)

    def source(self, name: str) -> SourceStatus:
        return self.status.setdefault(name, SourceStatus())

    def record_request(self, source: str, code: int | str) -> None:
        self.requests[(source, str(code))] += 1
        if str(code) == "429":
            self.rate_limited[source] += 1

    def record_error(self, source: str, kind: str) -> None:
        self.errors[(source, kind)] += 1

    def set_progress(self, source: str, done: int, total: int | None) -> None:
        status = self.source(source)
        status.sync_done, status.sync_total = done, total


class SelfCollector:
    """Yields fresh families from `UpstreamStats` on every scrape (no upstream calls)."""

    def __init__(self, stats: UpstreamStats, enabled_sources: tuple[str, ...]) -> None:
        self.stats = stats
        self.enabled = enabled_sources

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        demo = GaugeMetricFamily(
            "tensafe_exporter_demo_mode", "1 when every source is the built-in simulated world."
        )
        demo.add_metric([], 1.0 if stats.demo else 0.0)
        yield demo

        up = GaugeMetricFamily(
            "tensafe_exporter_source_up",
            "1 if the source's last refresh succeeded; 0 keeps serving its last good values.",
            labels=["source"],
        )
        last = GaugeMetricFamily(
            "tensafe_exporter_source_last_success_timestamp_seconds",
            "Unix time of the source's last successful refresh.",
            labels=["source"],
        )
        duration = GaugeMetricFamily(
            "tensafe_exporter_source_refresh_duration_seconds",
            "Wall-clock duration of the source's last refresh attempt.",
            labels=["source"],
        )
        progress = GaugeMetricFamily(
            "tensafe_exporter_initial_sync_progress_ratio",
            "Share of the initial full sync done (1 once the source has synced fully).",
            labels=["source"],
        )
        for name in self.enabled:
            status = stats.source(name)
            up.add_metric([name], 1.0 if status.up else 0.0)
            if status.last_success is not None:
                last.add_metric([name], status.last_success)
            if status.last_duration is not None:
                duration.add_metric([name], status.last_duration)
            if status.sync_total:
                progress.add_metric([name], min(1.0, status.sync_done / status.sync_total))
            elif status.last_success is not None:
                progress.add_metric([name], 1.0)
        yield from (up, last, duration, progress)

        requests = CounterMetricFamily(
            "tensafe_exporter_upstream_requests",
            "HTTP requests made to upstream APIs, by response code.",
            labels=["source", "code"],
        )
        for (source, code), count in sorted(stats.requests.items()):
            requests.add_metric([source, code], count)
        yield requests

        limited = CounterMetricFamily(
            "tensafe_exporter_upstream_rate_limited",
            "Upstream responses that were 429 Too Many Requests.",
            labels=["source"],
        )
        for source, count in sorted(stats.rate_limited.items()):
            limited.add_metric([source], count)
        yield limited

        errors = CounterMetricFamily(
            "tensafe_exporter_source_errors",
            "Failed upstream calls and refreshes, by kind.",
            labels=["source", "kind"],
        )
        for (source, kind), count in sorted(stats.errors.items()):
            errors.add_metric([source, kind], count)
        yield errors
