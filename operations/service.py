"""The operator part's state on the app: config, store, the read interfaces, the HTTP session
for Prometheus, and the daily record (stored at `record_at`, morning numbers at `morning_at`,
optionally posted to Slack through the webhook's outbox)."""

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from operations import checklist, views
from operations.config import OperatorConfig
from operations.picture import Gatherer, Picture, day_start
from operations.ports import AlertBook, ExporterView
from operations.prometheus import Prometheus
from operations.store import DayRow, OperatorStore
from tensafe_ops.auth import Auth
from tensafe_ops.clock import Clock
from tensafe_ops.log import get_logger

log = get_logger("tensafe_ops.operations")

Part = Literal["morning", "record"]
READY_GRACE = timedelta(minutes=30)
"""How long past its time (or past the start) a record waits for the sources and Prometheus."""


class OverrideError(Exception):
    """A client named a Prometheus this service may not query."""


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def at_time(day: date, moment: time) -> datetime:
    return day_start(day) + timedelta(hours=moment.hour, minutes=moment.minute)


def due_parts(now: datetime, cfg: OperatorConfig, today: DayRow | None) -> list[Part]:
    """What the recorder should store now: the morning numbers once `morning_at` has passed
    (if none are stored), the day's record once `record_at` has passed (unless one was stored
    after it: an on-demand record earlier in the day is replaced by the nightly one)."""
    day = now.astimezone(UTC).date()
    due: list[Part] = []
    if now >= at_time(day, cfg.morning_at) and (today is None or today.morning is None):
        due.append("morning")
    nightly = at_time(day, cfg.record_at)
    recorded = None if today is None else today.recorded_at
    if now >= nightly and (recorded is None or recorded < nightly.timestamp()):
        due.append("record")
    return due


def summary_owed(now: datetime, cfg: OperatorConfig, today: DayRow | None) -> bool:
    """The nightly record is stored but its summary not posted: the pass that stored it
    failed before (the store timed out), or it was stored on demand after `record_at`."""
    if cfg.summary_slack is None or today is None or today.record is None:
        return False
    nightly = at_time(now.astimezone(UTC).date(), cfg.record_at).timestamp()
    recorded = today.recorded_at
    return today.posted_at is None and recorded is not None and recorded >= nightly


@dataclass
class Operations:
    cfg: OperatorConfig
    store: OperatorStore
    clock: Clock
    api_auth: Auth
    exporter: ExporterView | None = None
    alerts: AlertBook | None = None
    session: aiohttp.ClientSession | None = None
    started_at: datetime | None = None
    recorder_errors: int = 0
    last_recorded: dict[str, str] = field(default_factory=dict)

    def prometheus(self, override: str | None = None) -> Prometheus | None:
        """The Prometheus to ask: the configured one, or a client's loopback one when the
        config allows it. None when there is none."""
        assert self.session is not None, "the operator session starts with the app"
        url = self.cfg.prometheus_url
        if override:
            if self.cfg.prometheus_override != "loopback":
                raise OverrideError(
                    "this service does not accept X-Prometheus-URL "
                    "(operator.prometheus_override is off)"
                )
            if not is_loopback_url(override):
                raise OverrideError("X-Prometheus-URL must be an http(s) URL on loopback")
            url = override
        if url is None:
            return None
        return Prometheus(self.session, url, self.cfg.prometheus_timeout)

    async def picture(self, now: datetime, prometheus: Prometheus | None) -> Picture:
        gatherer = Gatherer(self.cfg, self.store, self.exporter, self.alerts)
        return await gatherer.gather(now, prometheus)

    # -- the daily record ------------------------------------------------------------------------

    def record_of(self, p: Picture) -> dict[str, Any]:
        answers = checklist.data_answers(p)
        answers["end.metrics_recorded"] = {
            **answers["end.metrics_recorded"],
            "state": "done",
            "detail": f"recorded at {views.iso(p.now)}",
        }
        board = views.status(p)
        return {
            "taken_at": views.iso(p.now),
            "light": board["light"],
            "key_numbers": views.key_numbers(p),
            "morning_snapshot": views.morning_snapshot(p),
            "summary": views.daily_summary(p),
            "checklist": answers,
            "key_metrics": checklist.key_metrics(p),
            "tiles": {t["key"]: t["value"] for t in board["tiles"]},
            "customers": views.customer_totals(p),
        }

    async def record_now(self, now: datetime, prometheus: Prometheus | None) -> dict[str, Any]:
        p = await self.picture(now, prometheus)
        record = self.record_of(p)
        await self.store.save_record(p.day, record, now, replace=True)
        if p.today is None or p.today.morning is None:
            await self.store.save_morning(p.day, views.morning_numbers(p), now, replace=False)
        return record

    async def record_due(self, now: datetime) -> list[Part]:
        """One pass of the recorder: store what is due, post the nightly summary once.

        What is due waits (up to READY_GRACE past its time, or past the start) until every
        exporter source has refreshed and a configured Prometheus answers with data: a morning
        stored with unknowns would make the day's comparisons unknown."""
        day = now.astimezone(UTC).date()
        today = await self.store.day(day)
        if summary_owed(now, self.cfg, today):
            assert today is not None and today.record is not None
            await self.post_summary(day, today.record, now)
        due = due_parts(now, self.cfg, today)
        if not due:
            return due
        waiting_until = max(self._latest_due(day, due), self.started_at or now) + READY_GRACE
        if not self.sources_ready() and now < waiting_until:
            return []
        p = await self.picture(now, self.prometheus())
        unknown = p.readings.configured and views.status(p)["light"] == "unknown"
        if unknown and now < waiting_until:
            return []  # Prometheus away, or without data yet
        if "morning" in due:
            await self.store.save_morning(day, views.morning_numbers(p), now, replace=False)
            log.info("morning_numbers_recorded", day=day.isoformat())
        if "record" in due:
            record = self.record_of(p)
            await self.store.save_record(day, record, now, replace=True)
            log.info("daily_record_stored", day=day.isoformat(), light=record["light"])
            await self.post_summary(day, record, now)
            pruned = await self.store.prune(day, self.cfg.retention_days)
            if pruned:
                log.info("daily_records_pruned", days=pruned)
        return due

    def sources_ready(self) -> bool:
        """Every enabled exporter source has refreshed at least once since the start."""
        if self.exporter is None:
            return True
        return all(row.get("last_success") is not None for row in self.exporter.freshness())

    def _latest_due(self, day: date, due: list[Part]) -> datetime:
        moments = {"morning": self.cfg.morning_at, "record": self.cfg.record_at}
        return max(at_time(day, moments[part]) for part in due)

    async def post_summary(self, day: date, record: dict[str, Any], now: datetime) -> int | None:
        """Queue the day's summary for Slack, unless it was already; its delivery id.

        The outbox's idempotency key makes it one delivery per day whoever queues it and how
        often (replicas, retried passes), so the day is marked posted only after the queueing:
        a mark taken first, then a queueing that failed or a mark that outlasted the store
        timeout, lost the day's summary (the next pass found it "posted")."""
        destination = self.cfg.summary_slack
        if destination is None or self.alerts is None:
            return None
        stored = await self.store.day(day)
        if stored is not None and stored.posted_at is not None:
            return None  # by another replica, an earlier pass or on demand
        text = checklist.summary_slack(record["summary"], record["key_metrics"])
        delivery = await self.alerts.post_slack(
            destination, text, f"operator:daily-summary:{day.isoformat()}", now
        )
        await self.store.mark_posted(day, now)
        log.info("daily_summary_queued", day=day.isoformat(), delivery_id=delivery)
        return delivery
