"""Scrape latency of /metrics vs prometheus_client.generate_latest of the same series.

Both endpoints are served by the same aiohttp process and scraped alternately by the same
client, so the ratio compares like with like. Then: scrape p99 while a source's refresh
is stuck on a 10 s upstream.

    python -m bench.scrape [--sizes 1000,10000,100000] [--scrapes 200]
"""

import argparse
import asyncio
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from bench.common import quiet_app, serve, summary
from exporter import RUNNER_KEY
from exporter.config import SourceConfig
from exporter.snapshot import Snapshot
from exporter.sources.base import ScheduledSource, SourceResult


def families(series: int) -> list[Metric]:
    """`series` gauge samples spread over 20 families with two labels each."""
    per_family = max(1, series // 20)
    result: list[Metric] = []
    for f in range(20):
        family = GaugeMetricFamily(
            f"tensafe_bench_family_{f}", "Benchmark family (cached).", labels=["account", "kind"]
        )
        for i in range(per_family):
            family.add_metric([f"acct_{i:06d}", f"k{i % 7}"], float(i))
        result.append(family)
    return result


class _Static:
    def __init__(self, fams: list[Metric]) -> None:
        self.fams = fams

    def collect(self) -> Iterator[Metric]:
        return iter(self.fams)


class SlowUpstreamSource:
    """A source whose refresh waits on an upstream that takes 10 s to answer."""

    name = "zendesk"

    def __init__(self, url: str, fams: list[Metric]) -> None:
        self.url = url
        self.fams = fams

    async def refresh(self, now: datetime) -> SourceResult:
        async with aiohttp.ClientSession() as session, session.get(self.url) as response:
            await response.read()
        return SourceResult(self.fams)

    async def aclose(self) -> None:
        return None


async def scrape_many(session: aiohttp.ClientSession, url: str, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        start = time.perf_counter()
        async with session.get(url) as response:
            await response.read()
        timings.append(time.perf_counter() - start)
    return timings


async def bench_size(series: int, scrapes: int, state_dir: Path) -> dict[str, float]:
    fams = families(series)
    snapshot = Snapshot.build("zendesk", fams, time.time())
    app = quiet_app(state_dir)
    runner_obj = app[RUNNER_KEY]
    await runner_obj._swap(snapshot)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static(fams))

    async def baseline(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain")

    app.router.add_get("/baseline", baseline)
    runner, base = await serve(app)
    ours: list[float] = []
    theirs: list[float] = []
    async with aiohttp.ClientSession() as session:
        await scrape_many(session, f"{base}/metrics", 3)  # warm up
        for _ in range(scrapes):
            ours += await scrape_many(session, f"{base}/metrics", 1)
            theirs += await scrape_many(session, f"{base}/baseline", 1)
    await runner.cleanup()
    a, b = summary(ours), summary(theirs)
    return {
        "series": series,
        "ours_p50_ms": a["p50_ms"],
        "ours_p99_ms": a["p99_ms"],
        "baseline_p50_ms": b["p50_ms"],
        "baseline_p99_ms": b["p99_ms"],
        "speedup_p50": b["p50_ms"] / a["p50_ms"],
        "speedup_p99": b["p99_ms"] / a["p99_ms"],
    }


async def bench_slow_source(series: int, scrapes: int, state_dir: Path) -> dict[str, float]:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.json_response({})

    upstream_app = web.Application()
    upstream_app.router.add_get("/slow", slow)
    upstream, upstream_url = await serve(upstream_app)
    app = quiet_app(state_dir)
    runner_obj = app[RUNNER_KEY]
    fams = families(series)
    await runner_obj._swap(Snapshot.build("zendesk", fams, time.time()))
    scheduled = ScheduledSource(
        SlowUpstreamSource(f"{upstream_url}/slow", fams), SourceConfig(interval=60, timeout=30)
    )
    runner, base = await serve(app)
    async with aiohttp.ClientSession() as session:
        await scrape_many(session, f"{base}/metrics", 3)
        idle = await scrape_many(session, f"{base}/metrics", scrapes)
        refresh = asyncio.create_task(runner_obj.refresh_once(scheduled))
        await asyncio.sleep(0.2)
        busy = await scrape_many(session, f"{base}/metrics", scrapes)
        still_refreshing = not refresh.done()
        refresh.cancel()
    await runner.cleanup()
    await upstream.cleanup()
    a, b = summary(idle), summary(busy)
    return {
        "series": series,
        "idle_p99_ms": a["p99_ms"],
        "slow_source_p99_ms": b["p99_ms"],
        "ratio_p99": b["p99_ms"] / a["p99_ms"],
        "refresh_in_flight_throughout": float(still_refreshing),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("series  ours_p50  ours_p99  base_p50  base_p99  speedup_p50  speedup_p99")
        for size in (int(s) for s in args.sizes.split(",")):
            scrapes = args.scrapes if size < 100_000 else max(20, args.scrapes // 5)
            r = await bench_size(size, scrapes, Path(tmp) / str(size))
            print(
                f"{size:>6}  {r['ours_p50_ms']:>7.2f}ms {r['ours_p99_ms']:>7.2f}ms "
                f"{r['baseline_p50_ms']:>7.2f}ms {r['baseline_p99_ms']:>7.2f}ms "
                f"{r['speedup_p50']:>10.1f}x {r['speedup_p99']:>10.1f}x"
            )
        r = await bench_slow_source(10_000, 100, Path(tmp) / "slow")
        print(
            f"\nwhile a refresh waits on a 10 s upstream ({r['series']} series): "
            f"idle p99 {r['idle_p99_ms']:.2f}ms, during {r['slow_source_p99_ms']:.2f}ms "
            f"(ratio {r['ratio_p99']:.2f}; refresh still in flight: "
            f"{bool(r['refresh_in_flight_throughout'])})"
        )


if __name__ == "__main__":
    asyncio.run(main())
