"""Scrape latency of /metrics vs prometheus_client.generate_latest of the same series, and
vs the floor: a handler returning the same bytes, built beforehand.

All three are served by the same aiohttp process and scraped in turn by the same client,
once with `Accept-Encoding: gzip` (as Prometheus scrapes; every body gzipped, the client
decompresses) and once with `identity` (every body plain), so each ratio compares like
with like. Then: scrape p99 while a source's refresh is stuck on a 10 s upstream.

    python -m bench.scrape [--sizes 1000,10000,100000] [--scrapes 200]
"""

import argparse
import asyncio
import gzip
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


ENCODINGS = {"gzip": "gzip", "plain": "identity"}
"""What each run's client sends as Accept-Encoding (Prometheus sends gzip)."""


async def scrape_many(
    session: aiohttp.ClientSession, url: str, count: int, encoding: str = "gzip"
) -> list[float]:
    """Scrape `count` times; each timing includes reading and (for gzip) decompressing the
    body, as Prometheus does."""
    timings = []
    headers = {"Accept-Encoding": encoding}
    for _ in range(count):
        start = time.perf_counter()
        async with session.get(url, headers=headers) as response:
            await response.read()
        timings.append(time.perf_counter() - start)
    return timings


def _wants_gzip(request: web.Request) -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "")


async def bench_size(series: int, scrapes: int, state_dir: Path) -> list[dict[str, float | str]]:
    """Per encoding, side by side on one server, scraped in turn by one client: ours, the
    floor (a handler returning the very bytes ours returned, built beforehand: what any
    server must at least spend on the request, the copy and the client's decompression) and
    `generate_latest` over a registry of the same series, gzipped when asked the way
    prometheus_client's own exposition does (`gzip.compress`, level 9)."""
    fams = families(series)
    snapshot = Snapshot.build("zendesk", fams, time.time())
    app = quiet_app(state_dir)
    runner_obj = app[RUNNER_KEY]
    await runner_obj._swap(snapshot)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static(fams))
    floor: dict[str, bytes] = {}

    async def baseline(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        if _wants_gzip(request):
            return web.Response(
                body=gzip.compress(body),
                content_type="text/plain",
                headers={"Content-Encoding": "gzip"},
            )
        return web.Response(body=body, content_type="text/plain")

    async def static(request: web.Request) -> web.Response:
        if _wants_gzip(request):
            return web.Response(
                body=floor["gzip"], content_type="text/plain", headers={"Content-Encoding": "gzip"}
            )
        return web.Response(body=floor["plain"], content_type="text/plain")

    app.router.add_get("/baseline", baseline)
    app.router.add_get("/floor", static)
    runner, base = await serve(app)
    results: list[dict[str, float | str]] = []
    async with aiohttp.ClientSession(auto_decompress=False) as raw:
        for name, encoding in ENCODINGS.items():
            async with raw.get(f"{base}/metrics", headers={"Accept-Encoding": encoding}) as r:
                floor[name] = await r.read()
    async with aiohttp.ClientSession() as session:
        for name, encoding in ENCODINGS.items():
            timings: dict[str, list[float]] = {"ours": [], "floor": [], "baseline": []}
            for path in timings:  # warm up
                await scrape_many(session, f"{base}/{_PATHS[path]}", 2, encoding)
            for _ in range(scrapes):
                for path, values in timings.items():
                    values.extend(await scrape_many(session, f"{base}/{_PATHS[path]}", 1, encoding))
            ours, low, theirs = (summary(timings[k]) for k in ("ours", "floor", "baseline"))
            results.append(
                {
                    "series": series,
                    "encoding": name,
                    "bytes": len(floor[name]),
                    "ours_p50_ms": ours["p50_ms"],
                    "ours_p99_ms": ours["p99_ms"],
                    "floor_p50_ms": low["p50_ms"],
                    "floor_p99_ms": low["p99_ms"],
                    "baseline_p50_ms": theirs["p50_ms"],
                    "baseline_p99_ms": theirs["p99_ms"],
                }
            )
    await runner.cleanup()
    return results


_PATHS = {"ours": "metrics", "floor": "floor", "baseline": "baseline"}


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
        print(
            "series encoding   body | ours p50   p99 | floor p50   p99 | generate_latest p50"
            "      p99 | ours/floor p50 p99 | generate_latest/ours p50 p99"
        )
        for size in (int(s) for s in args.sizes.split(",")):
            scrapes = args.scrapes if size < 100_000 else max(20, args.scrapes // 5)
            for r in await bench_size(size, scrapes, Path(tmp) / str(size)):
                print(
                    f"{size:>6} {r['encoding']:<8} {int(r['bytes']) / 1e6:5.2f} MB | "
                    f"{r['ours_p50_ms']:8.2f} {r['ours_p99_ms']:5.2f} | "
                    f"{r['floor_p50_ms']:9.2f} {r['floor_p99_ms']:5.2f} | "
                    f"{r['baseline_p50_ms']:19.2f} {r['baseline_p99_ms']:8.2f} | "
                    f"{float(r['ours_p50_ms']) / float(r['floor_p50_ms']):14.2f} "
                    f"{float(r['ours_p99_ms']) / float(r['floor_p99_ms']):4.2f} | "
                    f"{float(r['baseline_p50_ms']) / float(r['ours_p50_ms']):24.1f} "
                    f"{float(r['baseline_p99_ms']) / float(r['ours_p99_ms']):4.1f}"
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
