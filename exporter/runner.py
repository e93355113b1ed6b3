"""Runs each source on its own interval and swaps in its new snapshot.

A failing source keeps its last good snapshot (no false zeros) and is marked down.
Snapshots are persisted so a restarted exporter serves real values at once.
"""

import asyncio
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

from exporter.snapshot import Snapshot, merge_shared, render
from exporter.sources.base import ScheduledSource
from exporter.stats import UpstreamStats
from tensafe_ops.clock import Clock
from tensafe_ops.http import UpstreamError, backoff_delay
from tensafe_ops.log import get_logger
from tensafe_ops.metrics import Exposition
from tensafe_ops.storage import StateStore

log = get_logger("tensafe_ops.exporter")

SNAPSHOT_NAMESPACE = "snapshot"


def _join(snapshots: Iterable[Snapshot]) -> Exposition:
    ordered = sorted(snapshots, key=lambda s: s.source)
    parts = [(s.text, s.openmetrics) for s in ordered]
    shared = merge_shared(ordered)
    if shared:
        parts.append(render(shared))
    return Exposition.join(parts)


class Runner:
    def __init__(
        self,
        sources: list[ScheduledSource],
        state: StateStore,
        stats: UpstreamStats,
        clock: Clock,
        *,
        wall: Clock | None = None,
    ) -> None:
        self.sources = sources
        self.state = state
        self.stats = stats
        self.clock = clock
        """What the sources measure with (a demo world's clock in demo mode)."""
        self.wall = wall or clock
        """When snapshots are taken (`..._last_success_timestamp_seconds`): real time, so
        staleness alerts hold even while a demo world's clock reads another day."""
        self.snapshots: dict[str, Snapshot] = {}
        self.exposition = Exposition()
        self._swap_lock = asyncio.Lock()
        self.refresh_again_in: dict[str, float] = {}
        """Per source, the sooner next refresh its last result asked for."""
        self.retry_after: dict[str, float | None] = {}
        """The Retry-After of each source's last failed refresh, if its upstream gave one."""

    # FactsView
    def facts(self, source: str) -> Mapping[str, Any] | None:
        snapshot = self.snapshots.get(source)
        return None if snapshot is None else snapshot.facts

    # The operator API's view (operations.ports.ExporterView)
    def overview(self, source: str) -> Mapping[str, Any] | None:
        snapshot = self.snapshots.get(source)
        return None if snapshot is None else snapshot.overview

    def freshness(self) -> list[dict[str, Any]]:
        """Per enabled source: up, the last success (Unix time) and the last refresh's duration."""
        rows = []
        for scheduled in self.sources:
            name = scheduled.source.name
            status = self.stats.source(name)
            rows.append(
                {
                    "source": name,
                    "up": status.up,
                    "last_success": status.last_success,
                    "last_duration": status.last_duration,
                    "interval": scheduled.config.interval,
                }
            )
        return rows

    def current(self) -> Exposition:
        return self.exposition

    async def _swap(self, snapshot: Snapshot) -> None:
        """Swap in `snapshot` and the joined exposition. Joining (gzip of every series) runs
        in a thread: at 100k series it takes a CPU-bound fraction of a second that the event
        loop, serving scrapes and webhooks, must not wait for."""
        async with self._swap_lock:
            snapshots = {**self.snapshots, snapshot.source: snapshot}
            exposition = await asyncio.to_thread(_join, snapshots.values())
            self.snapshots = snapshots
            self.exposition = exposition

    async def restore(self) -> None:
        """Serve the last persisted snapshots until the first refreshes finish."""
        names = {s.source.name for s in self.sources}
        stored = await self.state.get_all(SNAPSHOT_NAMESPACE)
        for name, data in stored.items():
            if name not in names:
                continue
            try:
                snapshot = Snapshot.from_json(name, data)
            except (KeyError, TypeError, ValueError):
                log.warning("snapshot_unreadable", source=name)
                continue
            await self._swap(snapshot)
            self.stats.source(name).last_success = snapshot.taken_at
            log.info("snapshot_restored", source=name, taken_at=snapshot.taken_at)

    async def refresh_once(self, scheduled: ScheduledSource) -> bool:
        source, cfg = scheduled.source, scheduled.config
        status = self.stats.source(source.name)
        started = time.monotonic()
        try:
            # Not asyncio.wait_for: on Python 3.11 it drops a cancellation that arrives as the
            # refresh finishes (CPython gh-86296), and this loop then never stopped (a hung
            # shutdown). asyncio.timeout runs the refresh in this task and cancels it here.
            async with asyncio.timeout(cfg.timeout):
                result = await source.refresh(self.clock())
            # Rendering is CPU-bound (100k series: ~0.4 s): off the event loop.
            snapshot = await asyncio.to_thread(
                Snapshot.build,
                source.name,
                result.families,
                self.wall().timestamp(),
                result.facts,
                result.overview,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a source must never take the process down
            kind = (
                exc.kind
                if isinstance(exc, UpstreamError)
                else ("timeout" if isinstance(exc, TimeoutError) else "internal")
            )
            self.stats.record_error(source.name, f"refresh_{kind}")
            self.retry_after[source.name] = (
                exc.retry_after if isinstance(exc, UpstreamError) else None
            )
            status.up = False
            status.last_duration = time.monotonic() - started
            log.warning(
                "refresh_failed",
                source=source.name,
                kind=kind,
                error=str(exc),
                exc_info=kind == "internal",
            )
            return False
        await self._swap(snapshot)
        if result.refresh_again_in is None:
            self.refresh_again_in.pop(source.name, None)
        else:
            self.refresh_again_in[source.name] = result.refresh_again_in
        status.up = True
        status.last_success = snapshot.taken_at
        status.last_duration = time.monotonic() - started
        try:
            await self.state.put(SNAPSHOT_NAMESPACE, source.name, snapshot.to_json())
        except Exception as exc:  # serving goes on; the next refresh persists again
            self.stats.record_error(source.name, "persist")
            log.warning("snapshot_persist_failed", source=source.name, error=str(exc))
        log.info("refreshed", source=source.name, duration=round(status.last_duration, 3))
        return True

    async def run_forever(self, scheduled: ScheduledSource) -> None:
        failures = 0
        name = scheduled.source.name
        while True:
            ok = await self.refresh_once(scheduled)
            failures = 0 if ok else failures + 1
            delay = next_delay(
                failures,
                scheduled.config.interval,
                again_in=self.refresh_again_in.get(name),
                retry_after=None if ok else self.retry_after.get(name),
            )
            await asyncio.sleep(delay)


def next_delay(
    failures: int,
    interval: float,
    *,
    again_in: float | None = None,
    retry_after: float | None = None,
) -> float:
    """Seconds until a source's next refresh. After a success (`failures` 0): its interval,
    jittered by 5 %, or sooner if it asked to look again (`again_in`). After failures: a
    short capped backoff, but not before the upstream's Retry-After, waited up to one
    interval (a refresh that met a long Retry-After failed at once rather than sleep)."""
    if failures == 0:
        return again_in if again_in is not None else interval * random.uniform(0.95, 1.05)
    delay = min(interval, 5.0 + backoff_delay(failures, base=5.0, cap=interval))
    if retry_after is not None:
        delay = max(delay, min(retry_after, interval))
    return delay
