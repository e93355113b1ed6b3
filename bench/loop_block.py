"""The longest event-loop stall while each source refreshes, on the benchmark world.

The simulated upstreams run in their own process (`tensafe-ops sandbox --bench-size`), so only
the exporter's own work lands on this process's event loop. The five real sources refresh
through the real `Runner` (snapshot rendering and persistence included) while a ticker task
sleeps 1 ms at a time and records how late it wakes: its longest lateness is the longest time
the loop could not serve anything (a scrape, a webhook).

Side by side in the same run, alternating the order every round: the refresh as it is (the
computation in worker threads through `exporter.sources.base.off_loop`), and the same refresh
with `off_loop` swapped for a plain call in each source module, i.e. the same computation
inline on the loop, as it ran before.

A full (generation 2) garbage collection holds the GIL, so it stalls the loop whichever
thread triggers it; the longest one seen during the measured refreshes is printed too.
`--gc-freeze` calls `gc.freeze()` after the first syncs (the product does not), so full
collections no longer walk the synced state: it shows what is left once they are dealt with.

    python -m bench.loop_block [--rounds 5] [--tick 10] [--scale N] [--gc-freeze]
"""

import argparse
import asyncio
import contextlib
import gc
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from bench.common import EXPORT_WINDOW, sandbox_process
from exporter import build_sources
from exporter.config import ExporterConfig
from exporter.runner import Runner
from exporter.sources import base, health, pagerduty, stripe, usage
from exporter.sources.base import ScheduledSource, SourceContext
from exporter.sources.zendesk import source as zendesk_source
from exporter.stats import UpstreamStats
from tensafe_ops.log import setup_logging
from tensafe_ops.storage import StateStore, create_engine, migrate

T = TypeVar("T")
TICK = 0.001
OFF_LOOP_USERS: tuple[ModuleType, ...] = (zendesk_source, stripe, pagerduty, usage, health)
"""The modules that call `off_loop`; the baseline swaps it for a plain call in each."""
MODES = ("inline", "off_loop")


async def _ticker(stop: asyncio.Event, worst: list[float]) -> None:
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(TICK)
        worst[0] = max(worst[0], time.perf_counter() - asked - TICK)


async def longest_stall(work: Awaitable[T]) -> tuple[T, float]:
    """`work`'s result and the longest the event loop was blocked while it ran (seconds)."""
    stop, worst = asyncio.Event(), [0.0]
    ticker = asyncio.create_task(_ticker(stop, worst))
    await asyncio.sleep(0)  # the ticker is asleep before the work starts
    result = await work
    stop.set()
    await ticker  # its last sleep covers the work's last step
    return result, worst[0]


def clock() -> datetime:
    return datetime.now(UTC)  # the sandbox's world runs on real time too


async def _inline(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return func(*args, **kwargs)


@contextlib.contextmanager
def computed_inline() -> Iterator[None]:
    """The sources' computation called directly on the loop, as before `off_loop`."""
    for module in OFF_LOOP_USERS:
        assert module.off_loop is base.off_loop, module.__name__
        module.off_loop = _inline  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in OFF_LOOP_USERS:
            module.off_loop = base.off_loop  # type: ignore[attr-defined]


def exporter_config(info: dict[str, Any]) -> ExporterConfig:
    urls, credentials = info["urls"], info["credentials"]
    return ExporterConfig.model_validate(
        {
            "zendesk": {
                "base_url": urls["zendesk"],
                "email": credentials["zendesk"]["email"],
                "token": credentials["zendesk"]["token"],
                "rate_limit_per_minute": 6000,  # in step with the fake's EXPORT_WINDOW
                "timeout": 3600,
            },
            "pagerduty": {
                "base_url": urls["pagerduty"],
                "token": credentials["pagerduty"]["token"],
            },
            "stripe": {
                "base_url": urls["stripe"],
                "api_key": credentials["stripe"]["api_key"],
                "timeout": 3600,
                "mrr": {"fx_rates": {"eur": 1.08, "jpy": 0.0067}},
            },
            "usage": {"url": info["usage_db_url"], "timeout": 600},
        }
    )


@dataclass
class Sample:
    stall: float
    loop_cpu: float
    wall: float


@dataclass
class Results:
    by_source: dict[str, dict[str, list[Sample]]] = field(default_factory=dict)
    full_collections: list[float] = field(default_factory=list)
    """Durations of the generation-2 garbage collections during the measured refreshes."""

    def add(self, source: str, mode: str, sample: Sample) -> None:
        self.by_source.setdefault(source, {m: [] for m in MODES})[mode].append(sample)


async def refresh(runner: Runner, scheduled: ScheduledSource) -> Sample:
    began_wall, began_cpu = time.perf_counter(), time.thread_time()
    ok, stall = await longest_stall(runner.refresh_once(scheduled))
    if not ok:
        raise RuntimeError(f"{scheduled.source.name}: refresh failed (see the log)")
    return Sample(stall, time.thread_time() - began_cpu, time.perf_counter() - began_wall)


@contextlib.contextmanager
def timing_full_collections(durations: list[float]) -> Iterator[None]:
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            durations.append(time.perf_counter() - started[0])

    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


async def measure(
    info: dict[str, Any], rounds: int, state_dir: Path, *, freeze: bool = False
) -> Results:
    engine = create_engine(f"sqlite+aiosqlite:///{state_dir / 'state.db'}")
    await migrate(engine)
    stats = UpstreamStats()
    runner = Runner([], StateStore(engine), stats, clock)
    runner.sources = build_sources(
        exporter_config(info), SourceContext(runner.state, stats, clock, runner)
    )
    for scheduled in runner.sources:  # first syncs, not measured
        began = time.perf_counter()
        name = scheduled.source.name
        if not await runner.refresh_once(scheduled):
            raise RuntimeError(f"{name}: first sync failed (see the log)")
        print(f"  {name}: first sync {time.perf_counter() - began:.0f}s", flush=True)
    if freeze:
        gc.collect()
        gc.freeze()
    results = Results()
    for round_ in range(rounds):
        for scheduled in runner.sources:
            for mode in MODES if round_ % 2 == 0 else reversed(MODES):
                inline = computed_inline() if mode == "inline" else contextlib.nullcontext()
                with inline, timing_full_collections(results.full_collections):
                    results.add(scheduled.source.name, mode, await refresh(runner, scheduled))
        print(f"  round {round_ + 1}/{rounds} done", flush=True)
    for scheduled in runner.sources:
        await scheduled.source.aclose()
    await engine.dispose()
    return results


def report(results: Results) -> None:
    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:7.1f} {max(values) * 1000:7.1f}"

    print(
        "\nlongest loop stall per refresh (median and worst over the rounds, ms); "
        "loop-thread CPU and wall time per refresh (median, ms)"
    )
    print(
        f"{'source':<10} {'inline stall':>15} {'off_loop stall':>15} {'ratio':>7} "
        f"{'inline cpu':>11} {'off_loop cpu':>13} {'inline wall':>12} {'off_loop wall':>14}"
    )
    worst = dict.fromkeys(MODES, 0.0)
    for source, by_mode in results.by_source.items():
        inline, offloaded = by_mode["inline"], by_mode["off_loop"]
        stalls = {m: [s.stall for s in by_mode[m]] for m in MODES}
        for mode in MODES:
            worst[mode] = max(worst[mode], *stalls[mode])
        ratio = statistics.median(stalls["inline"]) / statistics.median(stalls["off_loop"])
        print(
            f"{source:<10} {ms(stalls['inline']):>15} {ms(stalls['off_loop']):>15} "
            f"{ratio:>6.1f}x "
            f"{statistics.median(s.loop_cpu for s in inline) * 1000:>11.0f} "
            f"{statistics.median(s.loop_cpu for s in offloaded) * 1000:>13.0f} "
            f"{statistics.median(s.wall for s in inline) * 1000:>12.0f} "
            f"{statistics.median(s.wall for s in offloaded) * 1000:>14.0f}"
        )
    print(
        f"\nworst stall in any refresh: inline {worst['inline'] * 1000:.0f} ms, "
        f"off_loop {worst['off_loop'] * 1000:.0f} ms "
        f"(ratio {worst['inline'] / worst['off_loop']:.1f}x; "
        f"GIL switch interval {sys.getswitchinterval() * 1000:.0f} ms)"
    )
    full = results.full_collections
    print(
        f"full garbage collections during the refreshes: {len(full)}, longest "
        f"{max(full, default=0.0) * 1000:.0f} ms, tracked objects now {len(gc.get_objects())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tick", type=float, default=10.0, help="seconds between world changes")
    parser.add_argument(
        "--scale", type=float, help="a world this many times the default, not the bench size"
    )
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after first syncs")
    args = parser.parse_args()
    setup_logging("console", logging.WARNING)  # the sources' progress lines would drown the table
    size = ["--bench-size"] if args.scale is None else ["--scale", str(args.scale)]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        began = time.perf_counter()
        window = ("--zendesk-export-window", str(EXPORT_WINDOW))
        with sandbox_process(tmp / "w", *size, "--tick", str(args.tick), *window) as info:
            print(
                f"sandbox {' '.join(size)} up after {time.perf_counter() - began:.0f}s", flush=True
            )
            results = asyncio.run(measure(info, args.rounds, tmp, freeze=args.gc_freeze))
    report(results)


if __name__ == "__main__":
    main()
