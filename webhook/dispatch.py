"""The dispatcher: drains the outbox in the background, one loop per target.

Each round claims a batch of due deliveries (a lease, so several replicas never hold the
same row) and sends them, concurrently per destination and in claim order within one.
Rules:
- every send first takes a token from its destination's rate limiter (Slack 1 msg/s per
  webhook, PagerDuty 120/min per routing key, Zendesk by plan);
- success marks the delivery sent; it is never claimed again, so it is sent successfully
  at most once (PagerDuty's dedup_key and Zendesk's Idempotency-Key also make a resend
  after a lost answer harmless);
- 429 retries after the server's `Retry-After` and slows the whole destination down by as
  much; 5xx, timeouts and connection errors retry after capped exponential backoff with
  jitter; after `max_attempts` attempts the delivery is dead-lettered;
- any other 4xx (or an unknown destination) is dead-lettered at once, the error kept;
- a send is not started when the lease is about to run out: the row is left for the next
  claim rather than risking two replicas sending it.
"""

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, get_args

import aiohttp
from aiohttp import web

from tensafe_ops.clock import Clock
from tensafe_ops.http import RateLimiter, backoff_delay
from tensafe_ops.log import get_logger
from webhook.notifiers import Notifier, build_notifiers
from webhook.outbox import Delivery, Outbox, Outcome, Target
from webhook.targets import DestinationsConfig, DispatchConfig

log = get_logger("tensafe_ops.webhook.dispatch")

DeliveryOutcome = Literal["sent", "retried", "dead"]
TARGETS: tuple[Target, ...] = get_args(Target)
RETRY_AFTER_MAX = 3600.0
"""A Retry-After beyond an hour is treated as an hour: a bogus header must not park a page."""

HEADROOM = 0.95
"""Share of each destination's documented rate the dispatcher uses."""

RateLimits = Mapping[tuple[Target, str], RateLimiter]


@dataclass
class DeliveryStats:
    """Counts of send attempts by (target, outcome), read by the receiver's metrics."""

    deliveries: Counter[tuple[Target, DeliveryOutcome]] = field(default_factory=Counter)

    def record(self, target: Target, outcome: DeliveryOutcome) -> None:
        self.deliveries[(target, outcome)] += 1


def build_rate_limits(destinations: DestinationsConfig) -> dict[tuple[Target, str], RateLimiter]:
    """One token bucket per destination, paced just under the upstream's limit with no burst:
    pacing exactly at the limit (or a burst on top of it) still earns 429s at window edges."""
    limits: dict[tuple[Target, str], RateLimiter] = {}
    for name, slack in destinations.slack.items():
        limits[("slack", name)] = RateLimiter(slack.rate_per_second * 60 * HEADROOM, burst=1)
    for name, pagerduty in destinations.pagerduty.items():
        limits[("pagerduty", name)] = RateLimiter(pagerduty.rate_per_minute * HEADROOM, burst=1)
    for name, zendesk in destinations.zendesk.items():
        limits[("zendesk", name)] = RateLimiter(zendesk.rate_per_minute * HEADROOM, burst=1)
    return limits


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        notifiers: Mapping[Target, Notifier],
        limits: RateLimits,
        clock: Clock,
        config: DispatchConfig,
        stats: DeliveryStats | None = None,
    ) -> None:
        self.outbox = outbox
        self.notifiers = notifiers
        self.limits = limits
        self.clock = clock
        self.config = config
        self.stats = stats if stats is not None else DeliveryStats()
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.stopping.clear()
        self.tasks = [
            asyncio.create_task(self.run(target), name=f"dispatch-{target}")
            for target in self.notifiers
        ]

    async def stop(self) -> None:
        """Let in-flight sends finish (up to one request timeout), then cancel the rest."""
        self.stopping.set()
        if not self.tasks:
            return
        _, pending = await asyncio.wait(self.tasks, timeout=self.config.request_timeout + 1)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    async def run(self, target: Target) -> None:
        while not self.stopping.is_set():
            try:
                claimed = await self.drain_once(target)
            except Exception:  # the outbox may be briefly unavailable; keep the loop alive
                log.exception("dispatch_round_failed", target=target)
                claimed = 0
            if claimed < self.config.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self.config.poll_interval)

    async def drain_once(self, target: Target) -> int:
        """Claim one batch of due deliveries for `target` and send it; returns how many."""
        now = self.clock()
        batch = await self.outbox.claim(
            target, self.config.batch_size, now, self.config.lease_seconds
        )
        # The last moment a send may start and still finish inside the lease.
        start_before = now + timedelta(
            seconds=self.config.lease_seconds - self.config.request_timeout
        )
        by_destination: dict[str, list[Delivery]] = {}
        for delivery in batch:
            by_destination.setdefault(delivery.destination, []).append(delivery)
        await asyncio.gather(
            *(self._send_in_order(target, group, start_before) for group in by_destination.values())
        )
        return len(batch)

    async def _send_in_order(
        self, target: Target, deliveries: list[Delivery], start_before: datetime
    ) -> None:
        limiter = self.limits.get((target, deliveries[0].destination))
        for delivery in deliveries:
            if limiter is not None:
                await limiter.acquire()
            if self.stopping.is_set() or self.clock() >= start_before:
                return  # the rest keep their lease until it runs out, then are claimed again
            outcome = await self._send(target, delivery)
            try:
                await self._record(target, delivery, outcome, limiter)
            except Exception:
                # Sent but not recorded: after the lease the row is claimed and sent again
                # (harmless for PagerDuty and Zendesk, a repeated message for Slack).
                log.exception("delivery_not_recorded", target=target, delivery=delivery.id)
                return

    async def _send(self, target: Target, delivery: Delivery) -> Outcome:
        notifier = self.notifiers[target]
        try:
            return await notifier.send(delivery)
        except Exception as exc:  # a notifier bug must not kill the loop; try again later
            log.exception("notifier_failed", target=target, delivery=delivery.id)
            return Outcome(
                ok=False, retryable=True, error=f"notifier failed ({type(exc).__name__})"
            )

    async def _record(
        self, target: Target, delivery: Delivery, outcome: Outcome, limiter: RateLimiter | None
    ) -> None:
        now = self.clock()
        attempt = delivery.attempts + 1
        context = {
            "target": target,
            "destination": delivery.destination,
            "delivery": delivery.id,
            "attempt": attempt,
            "status": outcome.status,
        }
        if outcome.ok:
            await self.outbox.mark_sent(delivery.id, now, outcome.status or 0)
            self.stats.record(target, "sent")
            log.info("delivery_sent", **context)
            return
        error = outcome.error or "failed"
        if outcome.retryable and attempt < self.config.max_attempts:
            delay = self.retry_delay(outcome, attempt)
            if outcome.status == 429 and limiter is not None:
                limiter.penalize(delay)
            await self.outbox.mark_retry(delivery.id, now, now + timedelta(seconds=delay), error)
            self.stats.record(target, "retried")
            log.warning("delivery_retry", error=error, retry_in=round(delay, 3), **context)
            return
        if outcome.retryable:
            error = f"gave up after {attempt} attempts: {error}"
        await self.outbox.mark_dead(delivery.id, now, error)
        self.stats.record(target, "dead")
        log.error("delivery_dead", error=error, **context)

    def retry_delay(self, outcome: Outcome, attempt: int) -> float:
        """Retry-After when the server gave one; for a 429 without it the full exponential
        step (no jitter below it: the server asked us to slow down); else jittered backoff."""
        if outcome.retry_after is not None:
            return min(outcome.retry_after, RETRY_AFTER_MAX)
        base, cap = self.config.backoff_base, self.config.backoff_cap
        if outcome.status == 429:
            return float(min(cap, base * 2 ** (attempt - 1)))
        return backoff_delay(attempt, base=base, cap=cap)


def setup_dispatcher(
    app: web.Application,
    outbox: Outbox,
    destinations: DestinationsConfig,
    dispatch_config: DispatchConfig,
    clock: Clock,
) -> DeliveryStats:
    """Run the dispatcher for the app's lifetime: one shared ClientSession and one loop per
    target, started on startup and stopped (in-flight sends finished) on cleanup. Register
    it after whatever opens the outbox's database, so it starts later and stops earlier."""
    stats = DeliveryStats()

    async def dispatcher_ctx(_app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=dispatch_config.request_timeout)
        headers = {"User-Agent": "tensafe-ops-webhook"}
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            notifiers = build_notifiers(
                session, destinations, timeout=dispatch_config.request_timeout
            )
            dispatcher = Dispatcher(
                outbox, notifiers, build_rate_limits(destinations), clock, dispatch_config, stats
            )
            dispatcher.start()
            try:
                yield
            finally:
                await dispatcher.stop()

    app.cleanup_ctx.append(dispatcher_ctx)
    return stats
