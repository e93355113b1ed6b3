"""The digest loop: every `digest.poll_interval`, turn due digests into outbox messages.

Each replica runs it; the store's row claims make sure an item is listed once. The messages
themselves are sent by the dispatcher like any Slack delivery (rate limit, retries, dead
letters), so a digest accepted into the outbox survives restarts and is sent once.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from tensafe_ops.clock import Clock
from tensafe_ops.log import get_logger
from webhook.digest import digest_due, schedule_span
from webhook.digest_store import DigestStore
from webhook.targets import DigestConfig, SlackDestination

log = get_logger("tensafe_ops.webhook.digest")

STOP_GRACE = 5.0
"""Seconds a round in progress may take to commit on shutdown before it is cancelled."""


@dataclass
class DigestStats:
    """What this replica's digest loop did, and the pending items it last saw."""

    messages: int = 0
    alerts: int = 0
    pending: int | None = None


async def digest_once(
    store: DigestStore,
    cfg: DigestConfig,
    slack: Mapping[str, SlackDestination],
    clock: Clock,
    stats: DigestStats,
) -> int:
    """Enqueue every due digest (as many messages as its pending items need); returns how
    many messages were enqueued."""
    now = clock()
    pending = await store.pending()
    left = sum(p.count for p in pending.values())
    span = schedule_span(cfg.interval, cfg.at_utc_hour)
    enqueued = 0
    for destination, waiting in sorted(pending.items()):
        if not digest_due(waiting.oldest, now, cfg.interval, cfg.at_utc_hour):
            continue
        known = slack.get(destination)
        channel = known.channel if known is not None else None
        while True:
            flushed = await store.flush(
                destination, now, max_alerts=cfg.max_alerts, span_seconds=span, channel=channel
            )
            if flushed is None:
                break
            stats.alerts += flushed.alerts
            left -= flushed.alerts
            if flushed.delivery_id is not None:
                stats.messages += 1
                enqueued += 1
                log.info(
                    "digest_enqueued",
                    destination=destination,
                    alerts=flushed.alerts,
                    delivery=flushed.delivery_id,
                    remaining=flushed.remaining,
                )
            if flushed.remaining == 0:
                break
    stats.pending = max(0, left)
    return enqueued


class DigestCollector:
    def __init__(self, stats: DigestStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        messages = CounterMetricFamily(
            "tensafe_webhook_digest_messages",
            "Slack digest messages this replica put in the outbox.",
        )
        messages.add_metric([], self.stats.messages)
        yield messages
        alerts = CounterMetricFamily(
            "tensafe_webhook_digest_alerts",
            "Alerts this replica listed in Slack digest messages.",
        )
        alerts.add_metric([], self.stats.alerts)
        yield alerts
        if self.stats.pending is not None:
            pending = GaugeMetricFamily(
                "tensafe_webhook_digest_alerts_pending",
                "Alerts waiting for their destination's next Slack digest. Read from the "
                "store every digest poll interval.",
            )
            pending.add_metric([], self.stats.pending)
            yield pending


def setup_digester(
    app: web.Application,
    store: DigestStore,
    cfg: DigestConfig,
    slack: Mapping[str, SlackDestination],
    clock: Clock,
) -> DigestStats:
    """Run the digest loop for the app's lifetime (in `cleanup_ctx`). Register it after
    whatever opens the store's database, so it starts later and stops earlier."""
    stats = DigestStats()

    async def loop(stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await digest_once(store, cfg, slack, clock, stats)
            except Exception:  # the store may be briefly unavailable; the next round retries
                log.exception("digest_round_failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(cfg.poll_interval):  # not wait_for: exporter/runner.py
                    await stopping.wait()

    async def digester_ctx(_app: web.Application) -> AsyncIterator[None]:
        stopping = asyncio.Event()
        task = asyncio.create_task(loop(stopping), name="webhook-digest")
        yield
        # A round is one transaction per message: let it commit rather than cut it short.
        stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(digester_ctx)
    return stats
