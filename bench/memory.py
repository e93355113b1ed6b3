"""Peak RSS of the exporter on the benchmark world (100,000 tickets, 20,000 accounts).

The simulated upstreams run in their own process (`tensafe-ops sandbox --bench-size`), so the
number is the exporter's alone. Side by side: the same exporter with every source disabled.

    python -m bench.memory
"""

import asyncio
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.common import BIN, EXPORT_WINDOW, sandbox_process

SOURCES = ("zendesk", "pagerduty", "stripe", "usage", "health")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def config(info: dict[str, Any], enabled: bool) -> str:
    urls = info["urls"]
    if not enabled:
        return "exporter:\n" + "".join(f"  {s}:\n    enabled: false\n" for s in SOURCES)
    return f"""exporter:
  zendesk:
    base_url: {urls["zendesk"]}
    email: {info["credentials"]["zendesk"]["email"]}
    token: !env BENCH_ZENDESK_TOKEN
    rate_limit_per_minute: 6000
    timeout: 3600
  pagerduty:
    base_url: {urls["pagerduty"]}
    token: !env BENCH_PAGERDUTY_TOKEN
  stripe:
    base_url: {urls["stripe"]}
    api_key: !env BENCH_STRIPE_KEY
    timeout: 3600
    mrr: {{fx_rates: {{eur: 1.08, jpy: 0.0067}}}}
  usage:
    url: !env BENCH_USAGE_URL
    timeout: 600
  health:
    interval: 15
"""


async def wait_until_up(port: int, limit: float) -> float:
    began = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - began < limit:
            try:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    text = await response.text()
            except aiohttp.ClientError:
                await asyncio.sleep(1)
                continue
            families = list(text_string_to_metric_families(text))
            up = {
                s.labels["source"]: s.value
                for f in families
                if f.name == "tensafe_exporter_source_up"
                for s in f.samples
            }
            # health is up while it waits for the others' first syncs; it scores after them
            scored = any(f.name == "tensafe_health_customers" for f in families)
            if all(up.get(name) == 1 for name in SOURCES) and scored:
                return time.monotonic() - began
            await asyncio.sleep(2)
    raise RuntimeError(f"sources not up after {limit}s")


def run_exporter(tmp: Path, info: dict[str, Any], enabled: bool) -> tuple[float, float]:
    name = "full" if enabled else "idle"
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(config(info, enabled))
    env = dict(
        os.environ,
        BENCH_ZENDESK_TOKEN=info["credentials"]["zendesk"]["token"],
        BENCH_PAGERDUTY_TOKEN=info["credentials"]["pagerduty"]["token"],
        BENCH_STRIPE_KEY=info["credentials"]["stripe"]["api_key"],
        BENCH_USAGE_URL=info["usage_db_url"],
    )
    port = free_port()
    process = subprocess.Popen(
        [
            str(BIN),
            "serve",
            "--config",
            str(cfg),
            "--port",
            str(port),
            "--state-dir",
            str(tmp / name),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if enabled:
            took = asyncio.run(wait_until_up(port, 1800))
            time.sleep(20)  # a few steady-state refreshes on top of the first sync
        else:
            time.sleep(5)
            took = 0.0
        return peak_rss_mb(process.pid), took
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        window = ("--zendesk-export-window", str(EXPORT_WINDOW))
        with sandbox_process(tmp / "w", "--bench-size", "--tick", "0", *window) as info:
            idle, _ = run_exporter(tmp, info, enabled=False)
            full, took = run_exporter(tmp, info, enabled=True)
    print(f"exporter, every source disabled:       peak RSS {idle:7.1f} MB")
    print(
        f"exporter on the benchmark world:        peak RSS {full:7.1f} MB "
        f"(all sources up after {took:.0f}s)"
    )
    verdict = "met" if full <= 200 else "NOT met"
    print(f"ratio full/idle: {full / idle:.2f}; target <= 200 MB: {verdict}")


if __name__ == "__main__":
    main()
