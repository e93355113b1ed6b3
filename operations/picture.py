"""One request's picture of the world, gathered once: Prometheus readings (now and 24 hours ago),
the exporter's overviews and facts, the webhook's alerts and health, and the stored days, marks
and planned events. Every view (`operations.views`, `operations.checklist`) is a pure function of
a `Picture`, so each is tested by building one by hand.
"""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from operations.config import OperatorConfig
from operations.ports import AlertBook, ExporterView
from operations.prometheus import Prometheus, Readings, not_configured
from operations.store import DayRow, OperatorStore

NOW_QUERIES = (
    "uptime_24h",
    "error_rate_1h",
    "p95_latency",
    "active_pods",
    "gpu_utilisation",
    "api_up",
    "database_up",
    "redis_up",
    "requests_per_second",
    "queue_depth",
    "epsilon_spent",
    "he_operations_per_hour",
    "training_jobs_active",
    "training_jobs_queued",
    "cpu",
    "memory",
    "disk",
    "traffic_peak_7d",
    "error_count_24h",
    "error_rate_24h",
    "p95_latency_avg_24h",
)
YESTERDAY_QUERIES = (
    "dau",
    "api_calls_24h",
    "training_jobs_24h",
    "error_count_24h",
    "p95_latency_avg_24h",
    "uptime_24h",
)
"""Evaluated 24 hours ago: yesterday's key numbers when no daily record was stored then."""
SOURCES = ("zendesk", "pagerduty", "stripe", "usage", "health")
LOOKAHEAD = timedelta(days=7)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


@dataclass
class Picture:
    now: datetime
    cfg: OperatorConfig
    readings: Readings
    yesterday_readings: Readings
    overviews: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    facts: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    freshness: Sequence[Mapping[str, Any]] = ()
    webhook: dict[str, Any] | None = None
    """The webhook's health; None when the webhook is off."""
    firing: list[dict[str, Any]] = field(default_factory=list)
    alerts_today: list[dict[str, Any]] = field(default_factory=list)
    """Alerts first received since the start of the UTC day (newest first)."""
    maintenance: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    """Planned events from the start of yesterday to LOOKAHEAD ahead."""
    today: DayRow | None = None
    yesterday: DayRow | None = None
    marks: list[dict[str, Any]] = field(default_factory=list)
    """Checklist marks of today and yesterday (incident steps may be marked the next day)."""

    @property
    def day(self) -> date:
        return self.now.astimezone(UTC).date()

    def overview(self, source: str) -> Mapping[str, Any]:
        return self.overviews.get(source) or {}

    def has(self, source: str) -> bool:
        return source in self.overviews

    def value(self, key: str) -> float | None:
        return self.readings.get(key)

    def marks_of(self, step: str, day: date | None = None) -> list[dict[str, Any]]:
        wanted = (day or self.day).isoformat()
        return [m for m in self.marks if m["step"] == step and m["day"] == wanted]

    def marks_for(self, step: str) -> list[dict[str, Any]]:
        """Marks of `step` on any gathered day (incident steps)."""
        return [m for m in self.marks if m["step"] == step]


@dataclass
class Gatherer:
    cfg: OperatorConfig
    store: OperatorStore
    exporter: ExporterView | None
    alerts: AlertBook | None

    async def gather(self, now: datetime, prometheus: Prometheus | None) -> Picture:
        today = now.astimezone(UTC).date()
        yesterday = today - timedelta(days=1)
        if prometheus is None:
            readings, earlier = not_configured(), not_configured()
        else:
            queries = {key: self.cfg.query(key) for key in NOW_QUERIES}
            past = {key: self.cfg.query(key) for key in YESTERDAY_QUERIES}
            readings, earlier = await asyncio.gather(
                prometheus.read(queries), prometheus.read(past, now - timedelta(days=1))
            )
        picture = Picture(now=now, cfg=self.cfg, readings=readings, yesterday_readings=earlier)
        if self.exporter is not None:
            for source in SOURCES:
                overview = self.exporter.overview(source)
                if overview:  # empty: no refresh yet, or health still waiting for its inputs
                    picture.overviews[source] = overview
                facts = self.exporter.facts(source)
                if facts is not None:
                    picture.facts[source] = facts
            picture.freshness = self.exporter.freshness()
        if self.alerts is not None:
            picture.webhook = await self.alerts.health(now)
            picture.firing = await self.alerts.alerts(now, state="firing")
            picture.alerts_today = await self.alerts.alerts(now, since=day_start(today))
            picture.maintenance = await self.alerts.maintenance(now, include_past=False)
        picture.events = await self.store.events(day_start(yesterday), now + LOOKAHEAD)
        picture.today = await self.store.day(today)
        picture.yesterday = await self.store.day(yesterday)
        picture.marks = await self.store.marks(yesterday) + await self.store.marks(today)
        return picture
