"""The dispatcher: drains the outbox in the background, one loop per destination.

Per target, a watcher finds the destinations with due deliveries and keeps one drain loop
running for each, so destinations drain independently, each at its own rate limit. With
several replicas (PostgreSQL) one replica at a time sends to a destination (`webhook.owners`),
so its rate limit holds for the deployment, and a replica that dies is replaced within a look
at the outbox. A drain loop claims a batch of that destination's due deliveries (a lease, so
no two claimers ever hold the same row) and sends them in claim order. Rules:
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
  claim rather than risking two replicas sending it;
- on shutdown the claimed deliveries not yet attempted are released (best effort), so a
  restart sends them at once instead of after the lease.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, get_args

import aiohttp
from aiohttp import web

from tensafe_ops.clock import Clock
from tensafe_ops.http import RateLimiter, backoff_delay
from tensafe_ops.log import get_logger
from webhook.notifiers import Notifier, build_notifiers
from webhook.outbox import SENT_ONCE, Delivery, Outbox, Outcome, Target
from webhook.owners import LocalOwners, Owners
from webhook.targets import DestinationsConfig, DispatchConfig

log = get_logger("tensafe_ops.webhook.dispatch")

DeliveryOutcome = Literal["sent", "retried", "dead"]
TARGETS: tuple[Target, ...] = get_args(Target)
RETRY_AFTER_MAX = 3600.0
"""A Retry-After beyond an hour is treated as an hour: a bogus header must not park a page."""

RELEASE_TIMEOUT = 2.0
"""How long a stopping dispatcher waits for the outbox to take back unsent leases."""

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


class WakeUp:
    """Tells the dispatcher which destinations just got deliveries (the ingester calls
    `notify` as soon as its transaction commits), so a page goes out at once rather than at
    the next poll, without reading the outbox to find out where: the woken destinations are
    drained directly. Wake-ups that come while the dispatcher is busy add up into one."""

    def __init__(self) -> None:
        self._woken: dict[Target, set[str]] = {target: set() for target in TARGETS}
        self._events: dict[Target, asyncio.Event] = {target: asyncio.Event() for target in TARGETS}

    def event(self, target: Target) -> asyncio.Event:
        """Set when destinations of `target` were woken (the waiter clears it)."""
        return self._events[target]

    def notify(self, destinations: Iterable[tuple[Target, str]]) -> None:
        for target, destination in destinations:
            if target in self._woken:
                self._woken[target].add(destination)
                self._events[target].set()

    def take(self, target: Target) -> set[str]:
        """The destinations of `target` woken since the last call."""
        woken, self._woken[target] = self._woken[target], set()
        return woken


@dataclass
class Drain:
    """One destination's drain loop, and its signal that more deliveries came meanwhile."""

    task: asyncio.Task[None]
    more: asyncio.Event


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        notifiers: Mapping[Target, Notifier],
        limits: RateLimits,
        clock: Clock,
        config: DispatchConfig,
        stats: DeliveryStats | None = None,
        wake_up: WakeUp | None = None,
        owners: Owners | None = None,
    ) -> None:
        self.wake_up = wake_up if wake_up is not None else WakeUp()
        self.owners: Owners = owners if owners is not None else LocalOwners()
        self.outbox = outbox
        self.notifiers = notifiers
        self.limits = limits
        self.clock = clock
        self.config = config
        self.stats = stats if stats is not None else DeliveryStats()
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.release_timeout = RELEASE_TIMEOUT

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
        """Keep one drain loop per destination of `target` that has due deliveries, so each
        destination drains at its own rate: a storm to one Slack webhook (1 msg/s) does not
        hold back the messages of another. Destinations the ingester wakes are drained at
        once (a running loop is told to claim again); every `poll_interval` the outbox is
        read for the rest (retries coming due, rows of other replicas, released leases)."""
        draining: dict[str, Drain] = {}
        woken = self.wake_up.event(target)
        loop = asyncio.get_running_loop()
        next_look = loop.time()
        try:
            while not self.stopping.is_set():
                woken.clear()  # before taking: destinations woken after it wake us again
                wanted = self.wake_up.take(target)
                looked = loop.time() >= next_look
                if looked:
                    next_look = loop.time() + self.config.poll_interval
                    try:
                        wanted.update(await self.outbox.due_destinations(target, self.clock()))
                    except Exception:  # the outbox may be briefly unavailable; keep looping
                        log.exception("dispatch_round_failed", target=target)
                draining = {d: drain for d, drain in draining.items() if not drain.task.done()}
                for destination in sorted(wanted):
                    if destination in draining:
                        draining[destination].more.set()
                        continue
                    if not await self._ours(target, destination, retry=looked):
                        continue
                    more = asyncio.Event()
                    task = asyncio.create_task(
                        self.drain_destination(target, destination, more),
                        name=f"dispatch-{target}-{destination}",
                    )
                    draining[destination] = Drain(task, more)
                await self._sleep(woken, next_look - loop.time())
        finally:
            # Cancelling this task cancels these too (each releases the batch it holds).
            await asyncio.gather(*(d.task for d in draining.values()), return_exceptions=True)

    async def _ours(self, target: Target, destination: str, *, retry: bool) -> bool:
        """Whether this replica sends to `destination` (`webhook.owners`). Taking one over
        voids the previous sender's leases at once, and its rate limiter carries on from the
        destination's last attempt (the previous sender may have spent the budget a moment
        ago)."""
        acquired = await self.owners.acquire(target, destination, retry=retry)
        if acquired != "taken":
            return acquired == "held"
        limiter = self.limits.get((target, destination))
        now = self.clock()
        try:
            taken = await self.outbox.take_over(target, destination, now)
        except Exception:  # its leases then run out as after any crash; pace as if just sent
            log.exception("take_over_failed", target=target, destination=destination)
            if limiter is not None:
                limiter.spent(0.0)
            return True
        if limiter is not None and taken.last_attempt is not None:
            limiter.spent((now - taken.last_attempt).total_seconds())
        if taken.released:
            log.warning(
                "leases_taken_over", target=target, destination=destination, rows=taken.released
            )
        return True

    async def _sleep(self, woken: asyncio.Event, seconds: float) -> None:
        """Until `seconds` have passed, destinations were woken, or we stop."""
        if seconds <= 0:
            return
        waits = [asyncio.ensure_future(e.wait()) for e in (woken, self.stopping)]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def drain_destination(
        self, target: Target, destination: str, more: asyncio.Event | None = None
    ) -> None:
        """Claim and send batches for one destination until a batch is not full and no new
        deliveries were announced for it (`more`) since that claim."""
        more = more if more is not None else asyncio.Event()
        while not self.stopping.is_set() and self.owners.holds(target, destination):
            more.clear()  # before claiming: what is announced after it is claimed next round
            try:
                claimed = await self.drain_once(target, destination)
            except Exception:  # the outbox may be briefly unavailable; the next round retries
                log.exception("dispatch_round_failed", target=target, destination=destination)
                return
            if claimed < self.config.batch_size and not more.is_set():
                return

    async def drain_once(self, target: Target, destination: str | None = None) -> int:
        """Claim one batch of due deliveries for `target` (only to `destination` when given)
        and send it; returns how many were claimed. On shutdown the deliveries not attempted
        are released, so that a restarted replica sends them at once."""
        now = self.clock()
        batch = await self.outbox.claim(
            target, self.config.batch_size, now, self.config.lease_seconds, destination
        )

        # The last moment a send may start and still finish inside the lease.
        start_before = now + timedelta(
            seconds=self.config.lease_seconds - self.config.request_timeout
        )
        by_destination: dict[str, list[Delivery]] = {}
        for delivery in batch:
            by_destination.setdefault(delivery.destination, []).append(delivery)
        unattempted = {delivery.id for delivery in batch}
        try:
            await asyncio.gather(
                *(
                    self._send_in_order(target, group, start_before, unattempted)
                    for group in by_destination.values()
                )
            )
        except asyncio.CancelledError:
            await self._release(target, unattempted)
            raise
        if self.stopping.is_set():
            await self._release(target, unattempted)
        return len(batch)

    async def _release(self, target: Target, delivery_ids: set[int]) -> None:
        """Best effort and bounded: shutdown must not hang on the database. A delivery left
        leased is simply claimed again once its lease runs out."""
        if not delivery_ids:
            return
        release = asyncio.ensure_future(self.outbox.release(sorted(delivery_ids), self.clock()))
        try:
            async with asyncio.timeout(self.release_timeout):
                # Shielded: the task doing this is usually being cancelled.
                await asyncio.shield(release)
        except Exception:
            release.cancel()
            log.warning("leases_not_released", target=target, deliveries=len(delivery_ids))
            return
        log.info("leases_released", target=target, deliveries=len(delivery_ids))

    async def _send_in_order(
        self,
        target: Target,
        deliveries: list[Delivery],
        start_before: datetime,
        unattempted: set[int],
    ) -> None:
        """Send one destination's deliveries in order. Each outcome is recorded while the
        next one is sent (the outbox commits outcomes together), and all of them before
        this returns; a failure to record stops the batch."""
        limiter = self.limits.get((target, deliveries[0].destination))
        records: list[asyncio.Future[None]] = []
        try:
            for delivery in deliveries:
                if limiter is not None:
                    await limiter.acquire()
                if self.stopping.is_set() or self.clock() >= start_before:
                    return  # the rest keep their lease until it runs out (or is released)
                if not self.owners.holds(target, delivery.destination):
                    return  # another replica takes these over (their leases with them)
                if any(r.done() and r.exception() is not None for r in records):
                    return
                # From here the outcome is unknown until recorded: never released for a resend.
                unattempted.discard(delivery.id)
                if target in SENT_ONCE and not await self._start_sending(delivery):
                    return
                if limiter is not None:  # recording the attempt may have waited on the writer
                    limiter.spend_now()
                outcome = await self._send(target, delivery)
                write = self._judge(target, delivery, outcome, limiter)
                records.append(asyncio.ensure_future(self._recorded(target, delivery, write)))
        finally:
            # Shielded: on shutdown the sends made are still recorded.
            await asyncio.shield(asyncio.gather(*records, return_exceptions=True))

    async def _recorded(self, target: Target, delivery: Delivery, write: Awaitable[None]) -> None:
        try:
            await write
        except Exception:
            # Sent but not recorded: after the lease the row is claimed and sent again
            # (harmless for PagerDuty and Zendesk); a Slack row stays `sending` and is
            # dead-lettered as outcome unknown instead.
            log.exception("delivery_not_recorded", target=target, delivery=delivery.id)
            raise

    async def _start_sending(self, delivery: Delivery) -> bool:
        """Record the attempt before making it (Slack cannot deduplicate a resend, so a
        sender that dies mid-request must leave a trace: see `OUTCOME_UNKNOWN`). False when
        the claim was voided meanwhile (another replica took the destination over) or the
        record failed: then it is not sent by this claim."""
        try:
            started = await self.outbox.start_sending(delivery, self.clock())
        except Exception:
            log.exception("delivery_not_started", target=delivery.target, delivery=delivery.id)
            return False
        if not started:
            log.warning("claim_voided", target=delivery.target, delivery=delivery.id)
        return started

    async def _send(self, target: Target, delivery: Delivery) -> Outcome:
        notifier = self.notifiers[target]
        try:
            return await notifier.send(delivery)
        except Exception as exc:  # a notifier bug must not kill the loop; try again later
            log.exception("notifier_failed", target=target, delivery=delivery.id)
            return Outcome(
                ok=False, retryable=True, error=f"notifier failed ({type(exc).__name__})"
            )

    def _judge(
        self, target: Target, delivery: Delivery, outcome: Outcome, limiter: RateLimiter | None
    ) -> Awaitable[None]:
        """What an attempt's outcome means — counted, logged, and a 429 slowing the
        destination down before its next send — and the outbox write that records it."""
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
            self.stats.record(target, "sent")
            log.info("delivery_sent", **context)
            return self.outbox.mark_sent(delivery.id, now, outcome.status or 0)
        error = outcome.error or "failed"
        if outcome.retryable and attempt < self.config.max_attempts:
            delay = self.retry_delay(outcome, attempt)
            if outcome.status == 429 and limiter is not None:
                limiter.penalize(delay)
            self.stats.record(target, "retried")
            log.warning("delivery_retry", error=error, retry_in=round(delay, 3), **context)
            not_before = now + timedelta(seconds=delay)
            return self.outbox.mark_retry(delivery.id, now, not_before, error, outcome.status)
        if outcome.retryable:
            error = f"gave up after {attempt} attempts: {error}"
        self.stats.record(target, "dead")
        log.error("delivery_dead", error=error, **context)
        return self.outbox.mark_dead(delivery.id, now, error, outcome.status)

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
    wake_up: WakeUp | None = None,
    owners: Owners | None = None,
) -> Dispatcher:
    """Run the dispatcher for the app's lifetime: one shared ClientSession and one loop per
    target, started on startup and stopped (in-flight sends finished) on cleanup. Register
    it after whatever opens the outbox's database, so it starts later and stops earlier.
    Its notifiers are made at startup, with the session."""
    limits = build_rate_limits(destinations)
    dispatcher = Dispatcher(
        outbox, {}, limits, clock, dispatch_config, DeliveryStats(), wake_up, owners
    )

    async def dispatcher_ctx(_app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=dispatch_config.request_timeout)
        headers = {"User-Agent": "tensafe-ops-webhook"}
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            dispatcher.notifiers = build_notifiers(
                session, destinations, timeout=dispatch_config.request_timeout
            )
            await dispatcher.owners.start()
            dispatcher.start()
            try:
                yield
            finally:
                await dispatcher.stop()
                await dispatcher.owners.close()  # after the last send: then another may

    app.cleanup_ctx.append(dispatcher_ctx)
    return dispatcher
