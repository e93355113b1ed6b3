"""Ingest: journaled notifications become alert records and outbox rows.

Every replica runs one ingest loop. A batch is read and parsed outside any write lock, then
one transaction claims the entries and applies exactly the claimed ones
(`WebhookStore.apply`): an entry and what it causes swap atomically (see `Journal.claim`), so
a crash at any point leaves the entry or its effects, and it is applied once. On
PostgreSQL an advisory transaction lock lets one replica ingest at a time, so notifications are
applied in journal order (firing before its resolve) whichever replica received them.

An entry whose batch fails is retried alone; one that fails alone `max_attempts` times (its
body no longer parses after an upgrade, or the database refuses a value) is set aside as
`failed`, kept and counted, so it cannot hold back the entries behind it.
"""

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from aiohttp import web

from tensafe_ops.clock import Clock
from tensafe_ops.log import get_logger
from tensafe_ops.storage import describe_error as describe
from webhook.journal import Entry, Journal
from webhook.metrics import WebhookStats
from webhook.outbox import Target
from webhook.owners import announce_destinations
from webhook.payload import Notification, PayloadError, parse_notification
from webhook.store import IngestResult, WebhookStore
from webhook.targets import IngestConfig

log = get_logger("tensafe_ops.webhook")

INGEST_LOCK_ID = 0x7E5AFE + 1
"""PostgreSQL advisory lock: one replica ingests at a time (the migration lock is 0x7E5AFE)."""
RECENT_RESULTS = 1024
BACKOFF_CAP = 30.0
STOP_TIMEOUT = 10.0
ARRIVAL_WINDOW = 1.0
"""Seconds after the last accepted notification during which ingest takes small batches."""


class Answering:
    """How many notifications were being answered at once, on average over about the last
    second: arrival rate x answer time (Little's law), from the count of requests in flight
    sampled at each ingest step. At 50 notifications/s answered in 5 ms that is 0.25; at
    500/s, or when answers slow down because the process has no CPU to spare, it is several.
    Unlike CPU use it also rises when the machine, not this process, is the bottleneck."""

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()
        self.weighted = 0.0
        """Sum of count x seconds it held, over the samples kept (kept as they come and go,
        so that `average`, asked at every ingest step, does not sum the window again)."""

    def sample(self, now: float, in_flight: int) -> None:
        if self.samples:
            at, count = self.samples[-1]
            self.weighted += count * (now - at)
        self.samples.append((now, in_flight))
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window:
            at, count = self.samples.popleft()
            self.weighted -= count * (self.samples[0][0] - at)

    def average(self) -> float:
        """Time-weighted mean of the samples (each holds until the next one)."""
        if len(self.samples) < 2:
            return 0.0
        span = self.samples[-1][0] - self.samples[0][0]
        return self.weighted / span if span > 0 else 0.0


@dataclass(frozen=True)
class Parsed:
    entry: Entry
    notification: Notification


class Ingester:
    def __init__(
        self,
        store: WebhookStore,
        journal: Journal,
        stats: WebhookStats,
        config: IngestConfig,
        clock: Clock,
        receiving: Callable[[], int] = lambda: 0,
    ) -> None:
        self.clock = clock
        self.lag = 0.0
        """Seconds the oldest entry of the last batch had waited."""
        self.backlog = False
        """The last batch was full: more entries were waiting behind it."""
        self.answering = Answering()
        self.store = store
        self.journal = journal
        self.stats = stats
        self.config = config
        self.receiving = receiving
        """How many notifications are being received right now (the handler counts them)."""
        self.on_ingested: Callable[[set[tuple[Target, str]]], None] = lambda _: None
        """Called as soon as a batch that added outbox rows has committed, with their
        (target, destination): the dispatcher's wake-up."""
        self.recent: OrderedDict[int, IngestResult] = OrderedDict()
        """What the last ingested entries caused, by journal id (bounded; for logs and tests)."""
        self._accepted_seen = 0
        self._arrival_seen = float("-inf")
        """Loop time at which an ingest step last saw `stats.accepted` grow."""
        self._lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def ingest_once(self) -> int:
        """Ingest the oldest pending batch; returns how many entries were handled. While
        notifications are being received the batch is small, so the stretches of CPU it
        takes between two awaits (parsing, routing, building rows) stay short."""
        limit = self.config.busy_batch_size if self._busy() else self.config.batch_size
        async with self._lock:
            entries = await self.journal.pending(limit)
            if not entries:
                return 0
            self.lag = max(0.0, (self.clock() - entries[0].received_at).total_seconds())
            self.backlog = len(entries) >= limit
            parsed, broken = _parse(entries)
            try:
                await self._apply(parsed, broken)
            except Exception as exc:
                if len(entries) == 1:
                    await self._failed(entries[0], exc)
                    raise
                log.warning("ingest_batch_failed", entries=len(entries), error=describe(exc))
                failures = [await self._one(item.entry) for item in parsed]  # broken: set aside
                # Alone, one bad entry held back no other; raising makes the loop back off
                # before that entry's next attempt.
                for failure in failures:
                    if failure is not None:
                        raise failure from exc
            return len(entries)

    def _busy(self) -> bool:
        """Notifications are arriving: one is being answered now, or one was accepted within
        the last `ARRIVAL_WINDOW` (at 500/s most instants have none in flight, and one
        batch of `batch_size` is tens of milliseconds of CPU between two awaits, which every
        request arriving meanwhile waits out). A backlog older than `yield_lag` is caught up
        in full batches all the same."""
        now = asyncio.get_running_loop().time()
        if self.stats.accepted != self._accepted_seen:
            self._accepted_seen, self._arrival_seen = self.stats.accepted, now
        if self.lag >= self.config.yield_lag:
            return False
        return self.receiving() > 0 or now - self._arrival_seen < ARRIVAL_WINDOW

    async def _one(self, entry: Entry) -> Exception | None:
        parsed, broken = _parse([entry])
        try:
            await self._apply(parsed, broken)
        except Exception as exc:
            await self._failed(entry, exc)
            return exc
        return None

    async def _failed(self, entry: Entry, exc: BaseException) -> None:
        error = describe(exc)
        if await self.journal.record_failure(entry.id, error, self.config.max_attempts):
            self.stats.ingest_failures += 1
            log.error("notification_set_aside", journal_id=entry.id, error=error)
        else:
            log.warning("notification_ingest_failed", journal_id=entry.id, error=error)

    async def _apply(self, parsed: list[Parsed], broken: list[tuple[Entry, str]]) -> None:
        for entry, error in broken:  # first: a crash after the apply must not lose them
            await self.journal.set_aside(entry.id, error)
            self.stats.ingest_failures += 1
            log.error("notification_set_aside", journal_id=entry.id, error=error)
        if not parsed:
            return
        async with self.store.writing() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": INGEST_LOCK_ID}
                )
            mine = await self.journal.claim(conn, [p.entry.id for p in parsed])
            handled = {p.entry.id for p in parsed}
            parsed = [p for p in parsed if p.entry.id in mine]
            batch = [(p.notification, p.entry.received_at) for p in parsed]
            results = await self.store.apply(conn, batch)
            destinations = {d for result in results for d in result.destinations}
            await announce_destinations(conn, destinations)  # other replicas, on commit
        if destinations:  # committed: the pages may go before the journal is tidied up
            self.on_ingested(destinations)
        try:
            await self.journal.forget(handled)
        except Exception as exc:  # applied all the same; `claim` skips them next time
            log.warning("journal_cleanup_failed", entries=len(handled), error=describe(exc))
        for item, result in zip(parsed, results, strict=True):
            self._count(item, result)
        if parsed:
            log.info(
                "notifications_ingested",
                notifications=len(parsed),
                journal_ids=f"{parsed[0].entry.id}-{parsed[-1].entry.id}",
                alerts=sum(len(p.notification.alerts) for p in parsed),
                new=sum(r.new_alerts for r in results),
                resolved=sum(r.resolved for r in results),
                duplicates=sum(r.duplicates for r in results),
                deliveries=sum(r.deliveries for r in results),
            )

    def _count(self, item: Parsed, result: IngestResult) -> None:
        stats = self.stats
        for alert in item.notification.alerts:
            stats.received[(self.store.policy.severity(alert.labels), alert.status)] += 1
        stats.duplicates += result.duplicates
        for severity in result.breaches:
            stats.breaches[severity] += 1
        stats.ingested += 1
        self.recent[item.entry.id] = result
        while len(self.recent) > RECENT_RESULTS:
            self.recent.popitem(last=False)

    async def catch_up(self) -> None:
        """Ingest until the journal has nothing pending (tests, shutdown drills)."""
        while await self.ingest_once():
            pass
        await self.journal.tidy()

    async def run(self) -> None:
        backoff = 0.0
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            self.journal.appended.clear()  # before reading: a later append wakes us again
            started = loop.time()
            self.answering.sample(started, self.receiving())
            try:
                handled = await self.ingest_once()
                backoff = 0.0
            except Exception as exc:  # store unavailable or an entry failed: retry later
                log.warning("ingest_failed", error=describe(exc))
                backoff = min(max(1.0, backoff * 2), BACKOFF_CAP)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):  # not wait_for (exporter/runner.py)
                        await self.stopping.wait()
                continue
            if handled:
                await self._yield_to_receivers(loop.time() - started)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_interval):
                    await self.journal.appended.wait()

    def start(self) -> None:
        self.stopping.clear()
        self.task = asyncio.create_task(self.run(), name="webhook-ingest")

    async def stop(self) -> None:
        """Let the batch in hand commit (up to STOP_TIMEOUT), then cancel: a batch cut short
        rolls back, its entries stay in the journal for the next start."""
        self.stopping.set()
        self.journal.appended.set()
        if self.task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.task), STOP_TIMEOUT)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.task = None

    async def _yield_to_receivers(self, spent: float) -> None:
        pause = ingest_pause(
            spent,
            backlog=self.backlog,
            receiving=self.receiving() > 0,
            lag=self.lag,
            answering=self.answering.average(),
            config=self.config,
        )
        await asyncio.sleep(pause)


def ingest_pause(
    spent: float,
    *,
    backlog: bool,
    receiving: bool,
    lag: float,
    answering: float,
    config: IngestConfig,
) -> float:
    """Seconds to pause after a batch that took `spent` seconds. When notifications arrive
    faster than this process can both answer and ingest them, answering comes first: while
    some are being received, the batch came back full (a backlog is building) and on average
    more than `busy_receiving` were being answered at once (`Answering`), ingesting pauses
    so that it takes at
    most `busy_share` — unless the oldest waiting notification is older than `yield_lag`:
    then the backlog must not grow further, and ingesting takes what it needs (receiving
    slows down instead). Below that load, no pause: the ingester keeps up, and a page is
    never held back to protect answers that need no protecting."""
    yielding = (
        backlog and receiving and lag < config.yield_lag and answering > config.busy_receiving
    )
    if not yielding or config.busy_share >= 1:
        return 0.0
    return spent * (1 / config.busy_share - 1)


def _parse(entries: list[Entry]) -> tuple[list[Parsed], list[tuple[Entry, str]]]:
    parsed: list[Parsed] = []
    broken: list[tuple[Entry, str]] = []
    for entry in entries:
        try:
            parsed.append(Parsed(entry, parse_notification(entry.body.encode())))
        except PayloadError as exc:
            broken.append((entry, f"no longer a valid notification: {exc}"))
    return parsed, broken


def ingester_ctx(ingester: Ingester) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run_ingester(_app: web.Application) -> AsyncIterator[None]:
        ingester.start()
        yield
        await ingester.stop()

    return run_ingester
