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
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import DBAPIError

from tensafe_ops.clock import Clock
from tensafe_ops.log import get_logger
from webhook.journal import Entry, Journal
from webhook.metrics import WebhookStats
from webhook.payload import Notification, PayloadError, parse_notification
from webhook.store import IngestResult, WebhookStore
from webhook.targets import IngestConfig

log = get_logger("tensafe_ops.webhook")

INGEST_LOCK_ID = 0x7E5AFE + 1
"""PostgreSQL advisory lock: one replica ingests at a time (the migration lock is 0x7E5AFE)."""
RECENT_RESULTS = 1024
BACKOFF_CAP = 30.0
STOP_TIMEOUT = 10.0


def describe(exc: BaseException) -> str:
    """The error without the SQL statement and its parameters (they hold alert content)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}".splitlines()[0][:500]
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


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
        self.store = store
        self.journal = journal
        self.stats = stats
        self.config = config
        self.receiving = receiving
        """How many notifications are being received right now (the handler counts them)."""
        self.on_ingested: Callable[[], None] = lambda: None
        """Called after every batch that wrote something (the dispatcher's wake-up)."""
        self.recent: OrderedDict[int, IngestResult] = OrderedDict()
        """What the last ingested entries caused, by journal id (bounded; for logs and tests)."""
        self._lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def ingest_once(self) -> int:
        """Ingest the oldest pending batch; returns how many entries were handled. While
        notifications are being received the batch is small, so the stretches of CPU it
        takes between two awaits (parsing, routing, building rows) stay short."""
        busy = self.receiving() > 0
        limit = self.config.busy_batch_size if busy else self.config.batch_size
        async with self._lock:
            entries = await self.journal.pending(limit)
            if not entries:
                return 0
            self.lag = max(0.0, (self.clock() - entries[0].received_at).total_seconds())
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
        try:
            await self.journal.forget(handled)
        except Exception as exc:  # applied all the same; `claim` skips them next time
            log.warning("journal_cleanup_failed", entries=len(handled), error=describe(exc))
        for item, result in zip(parsed, results, strict=True):
            self._count(item, result)
        if parsed:
            self.on_ingested()
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

    async def run(self) -> None:
        backoff = 0.0
        while not self.stopping.is_set():
            self.journal.appended.clear()  # before reading: a later append wakes us again
            started = asyncio.get_running_loop().time()
            try:
                handled = await self.ingest_once()
                backoff = 0.0
            except Exception as exc:  # store unavailable or an entry failed: retry later
                log.warning("ingest_failed", error=describe(exc))
                backoff = min(max(1.0, backoff * 2), BACKOFF_CAP)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), backoff)
                continue
            if handled:
                await self._yield_to_receivers(asyncio.get_running_loop().time() - started)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.journal.appended.wait(), self.config.poll_interval)

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
        """While notifications are coming in, answering them comes first: pause so that
        ingesting takes at most `busy_share` of the time — unless the oldest waiting
        notification is older than `yield_lag`: then the backlog must not grow further, and
        ingesting takes what it needs (receiving slows down instead). Idle, no pause."""
        if self.receiving() and self.lag < self.config.yield_lag and self.config.busy_share < 1:
            await asyncio.sleep(spent * (1 / self.config.busy_share - 1))
        else:
            await asyncio.sleep(0)


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
