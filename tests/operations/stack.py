"""A real Prometheus (the Debian binary) scraping a small static stand-in for the TenSafe
product, with two days of history backfilled (`promtool tsdb create-blocks-from
openmetrics`), for the operator API's tests.

`Product` serves the series the checklist's PromQL reads, with values chosen by the test.
Counters are exact integrals of piecewise-constant rates since `HISTORY` ago (yesterday's
rates until 24 hours ago, today's since). The history has a sample every 2 minutes (a
5-minute `rate()` needs two), every minute for the last two hours and every second for the
last `FINE` seconds, which the live scrapes (every second) continue. Ratios of rates (the
error rate, the latency quantile) are exact; absolute rates come out a few per cent low (the
window's end extrapolates over the seconds between the history's last sample and the query).
Every latency observation falls in the (50 ms, 100 ms] bucket, so
`histogram_quantile(0.95, ...)` is 97.5 ms.
"""

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.conftest import require_binary

NAMESPACE = "tensafe"
MEMORY_LIMIT = 8 * 1024**3
DISK_SIZE = 1_000_000_000_000
HISTORY = 49 * 3600.0
DAY = 86400.0
FINE = 6 * 60.0
Sample = tuple[str, str, float]
"""(sample name, labels without braces, value)."""


@dataclass
class Product:
    requests_per_second: float = 1000.0
    error_percent: float = 0.5
    error_percent_yesterday: float | None = None
    """Yesterday's error share (default: today's)."""
    pods: int = 5
    """Pods that exist (constant: a vanished pod's last sample would linger in queries)."""
    pods_ready: int = 3
    gpu_percent: float = 85.0
    cpu_percent: float = 50.0
    memory_percent: float = 60.0
    disk_percent: float = 45.0
    queue_depth: int = 12
    epsilon: float = 2.3
    database_up: bool = True
    dau_yesterday: float | None = None
    """This service's tensafe_usage_daily_active_users as Prometheus scraped it yesterday."""
    instance: str = ""
    """The scrape target (host:port), so the backfilled `up` is the live series."""
    now: float = field(default_factory=time.time)
    """When the history ends and the live series go on."""

    @property
    def start(self) -> float:
        return self.now - HISTORY

    def _requests(self, at: float) -> tuple[float, float]:
        """(all requests, 5xx) since `start`."""
        switch = self.now - DAY
        before = min(at, switch) - self.start
        after = max(0.0, at - switch)
        yesterday = (
            self.error_percent
            if self.error_percent_yesterday is None
            else (self.error_percent_yesterday)
        )
        rps = self.requests_per_second
        total = rps * (before + after)
        errors = rps * (before * yesterday + after * self.error_percent) / 100
        return total, errors

    def families(self, at: float, *, history: bool = False) -> dict[tuple[str, str], list[Sample]]:
        elapsed = at - self.start
        total, errors = self._requests(at)
        ns = f'namespace="{NAMESPACE}"'
        families: dict[tuple[str, str], list[Sample]] = {
            ("tensafe_http_requests", "counter"): [
                ("tensafe_http_requests_total", 'status="200"', total - errors),
                ("tensafe_http_requests_total", 'status="500"', errors),
            ],
            ("tensafe_inference_latency_seconds", "histogram"): [
                ("tensafe_inference_latency_seconds_bucket", 'le="0.05"', 0.0),
                ("tensafe_inference_latency_seconds_bucket", 'le="0.1"', total),
                ("tensafe_inference_latency_seconds_bucket", 'le="+Inf"', total),
                ("tensafe_inference_latency_seconds_count", "", total),
                ("tensafe_inference_latency_seconds_sum", "", total * 0.08),
            ],
            ("tensafe_request_queue_depth", "gauge"): [
                ("tensafe_request_queue_depth", "", self.queue_depth)
            ],
            ("tensafe_dp_epsilon_spent", "gauge"): [
                ("tensafe_dp_epsilon_spent", 'tenant="acme"', self.epsilon)
            ],
            ("tensafe_training_jobs_active", "gauge"): [("tensafe_training_jobs_active", "", 3)],
            ("tensafe_training_jobs_queued", "gauge"): [("tensafe_training_jobs_queued", "", 7)],
            ("pg_up", "gauge"): [("pg_up", "", 1.0 if self.database_up else 0.0)],
            ("DCGM_FI_DEV_GPU_UTIL", "gauge"): [
                ("DCGM_FI_DEV_GPU_UTIL", f'{ns},gpu="0"', self.gpu_percent)
            ],
            ("node_filesystem_size_bytes", "gauge"): [
                ("node_filesystem_size_bytes", 'mountpoint="/var/lib/tensafe"', DISK_SIZE)
            ],
            ("node_filesystem_avail_bytes", "gauge"): [
                (
                    "node_filesystem_avail_bytes",
                    'mountpoint="/var/lib/tensafe"',
                    DISK_SIZE * (1 - self.disk_percent / 100),
                )
            ],
        }
        ready, cpu, memory, limit = [], [], [], []
        for index in range(self.pods):
            pod = f'{ns},pod="tensafe-api-{index}"'
            is_ready = index < self.pods_ready
            ready.append(("kube_pod_status_ready", f'{pod},condition="true"', float(is_ready)))
            ready.append(("kube_pod_status_ready", f'{pod},condition="false"', float(not is_ready)))
            container = f'{pod},container="api"'
            cpu.append(
                ("container_cpu_usage_seconds_total", container, self.cpu_percent / 100 * elapsed)
            )
            memory.append(
                (
                    "container_memory_working_set_bytes",
                    container,
                    self.memory_percent / 100 * MEMORY_LIMIT,
                )
            )
            limit.append(("container_spec_memory_limit_bytes", container, MEMORY_LIMIT))
        families[("kube_pod_status_ready", "gauge")] = ready
        families[("container_cpu_usage_seconds", "counter")] = cpu
        families[("container_memory_working_set_bytes", "gauge")] = memory
        families[("container_spec_memory_limit_bytes", "gauge")] = limit
        if history:
            families[("up", "gauge")] = [("up", "", 1.0)]
            if self.dau_yesterday is not None and at <= self.now - DAY + 3600:
                families[("tensafe_usage_daily_active_users", "gauge")] = [
                    ("tensafe_usage_daily_active_users", "", self.dau_yesterday)
                ]
        return families

    def exposition(self) -> str:
        lines = []
        for (name, kind), samples in self.families(time.time()).items():
            lines.append(f"# TYPE {name} {kind}")
            lines += [f"{sample}{{{labels}}} {value!r}" for sample, labels, value in samples]
        return "\n".join(lines) + "\n"

    def history(self) -> str:
        """OpenMetrics for promtool (see the module's docstring for the resolution)."""
        recent = self.now - 2 * 3600
        moments = [self.start + 120 * i for i in range(int((recent - self.start) / 120))]
        moments += [recent + 60 * i for i in range(int((2 * 3600 - FINE) / 60))]
        moments += [self.now - FINE + i for i in range(int(FINE))]
        by_family: dict[tuple[str, str], list[str]] = {}
        # The labels Prometheus adds to the live scrapes: history and live are one series.
        target = f'instance="{self.instance}",job="tensafe-api"'
        for at in moments:
            for key, samples in self.families(at, history=True).items():
                rows = by_family.setdefault(key, [])
                rows += [
                    f"{s}{{{_join(labels, target)}}} {value!r} {at:.3f}"
                    for s, labels, value in samples
                ]
        lines = []
        for (name, kind), rows in by_family.items():
            lines.append(f"# TYPE {name} {kind}")
            # OpenMetrics wants each series' samples together, in time order.
            rows.sort(key=lambda row: row.rsplit(" ", 2)[0])
            lines += rows
        return "\n".join(lines) + "\n# EOF\n"


def _join(*labels: str) -> str:
    return ",".join(label for label in labels if label)


async def serve_product(product: Product) -> tuple[web.AppRunner, str]:
    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=product.exposition(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"127.0.0.1:{port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningPrometheus:
    url: str
    process: asyncio.subprocess.Process

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def query(url: str, promql: str) -> list[dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/api/v1/query", params={"query": promql}) as response,
    ):
        body = await response.json()
    result: list[dict[str, object]] = body["data"]["result"]
    return result


async def _run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()[-2000:]


async def prometheus_with_history(
    tmp: Path, history: str, scrape_configs: str, ready: str, within: float = 30.0
) -> RunningPrometheus:
    """Prometheus (1 s scrapes) with `history` (OpenMetrics) backfilled by promtool, scraping
    `scrape_configs` (YAML list items); returns once `ready` (PromQL) has an answer."""
    binary = require_binary("prometheus")
    promtool = require_binary("promtool")
    await asyncio.to_thread(tmp.mkdir, parents=True, exist_ok=True)
    data = tmp / "data"
    await asyncio.to_thread((tmp / "history.om").write_text, history)
    await _run(
        promtool, "tsdb", "create-blocks-from", "openmetrics", str(tmp / "history.om"), str(data)
    )
    config = tmp / "prometheus.yml"
    await asyncio.to_thread(
        config.write_text,
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
        + scrape_configs,
    )
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    running = RunningPrometheus(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(aiohttp.ClientError, KeyError, ValueError):
            if await query(running.url, ready):
                return running
        if time.monotonic() > deadline or process.returncode is not None:
            await running.stop()
            raise AssertionError(f"Prometheus did not answer {ready} within {within:g} s")
        await asyncio.sleep(0.1)


async def start_prometheus(tmp: Path, product: Product, target: str) -> RunningPrometheus:
    """Prometheus with the product's history, scraping `target` every second as the job
    `tensafe-api`; returns once it answers queries. The history answers at once; Prometheus'
    first live scrape comes ~5 s later (its scrape manager applies targets every 5 s), so only
    a test that changes a value waits."""
    scrape = (
        "  - job_name: tensafe-api\n"
        "    honor_labels: true\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    return await prometheus_with_history(tmp, product.history(), scrape, 'up{job="tensafe-api"}')


@contextlib.asynccontextmanager
async def product_and_prometheus(tmp: Path, product: Product) -> AsyncIterator[RunningPrometheus]:
    runner, target = await serve_product(product)
    product.instance = target
    try:
        prometheus = await start_prometheus(tmp, product, target)
        try:
            yield prometheus
        finally:
            await prometheus.stop()
    finally:
        await runner.cleanup()


async def wait_for(url: str, promql: str, expected: float, within: float = 15.0) -> None:
    """Until Prometheus answers `promql` with `expected` (a changed gauge was scraped)."""
    deadline = time.monotonic() + within
    while True:
        found = await query(url, promql)
        if found and abs(float(found[0]["value"][1]) - expected) < 1e-9:  # type: ignore[index]
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{promql} never became {expected}: {found}")
        await asyncio.sleep(0.2)
