"""Memory and answers while the state database hangs (`python -m bench.hung_db`).

`tensafe-ops serve` runs in its own process with its state on PostgreSQL behind a
`FreezingProxy`. After a short warm-up the proxy freezes (connections stay open, nothing is
forwarded) and notifications of ~100 KB arrive at `--rate` a second (30) for `--seconds`; then
it thaws.
Printed: the serving process's RSS before, at its peak and after, the answers (status and
latency) during the freeze, and how long after the thaw a notification is accepted again.

`--baseline REV` runs the same against the code of that git revision first (side by side in
the same run), e.g. the revision before the journal got its byte budget.
"""

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.common import BIN, percentile
from tests.adversarial.freezing_proxy import FreezingProxy
from tests.webhook.am import am_alert, notification

PG = "postgresql://postgres@127.0.0.1:5432/test"
TOKEN = "bench-token-1"
CONFIG = """
server: {{host: 127.0.0.1, port: {port}, state_dir: {state_dir}, state_db_url: {db_url}}}
exporter:
  zendesk: {{enabled: false}}
  pagerduty: {{enabled: false}}
  stripe: {{enabled: false}}
  usage: {{enabled: false}}
  health: {{enabled: false}}
webhook:
  enabled: true
  receivers: {{/api/v1/alerts: {{auth: {{bearer_token: !env BENCH_TOKEN}}}}}}
  api_auth: {{bearer_token: !env BENCH_TOKEN}}
  store_timeout: 10
  destinations:
    slack:
      incidents: {{webhook_url: !env BENCH_SLACK}}
      alerts: {{webhook_url: !env BENCH_SLACK}}
    pagerduty: {{default: {{routing_key: !env BENCH_TOKEN, events_url: "http://127.0.0.1:9/"}}}}
    zendesk:
      default: {{base_url: "http://127.0.0.1:9", email: a@b.example, token: !env BENCH_TOKEN}}
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def body(index: int) -> bytes:
    alert = am_alert("WorkerCrashLoop", "warning", instance=f"worker-{index}")
    alert["annotations"]["description"] = "x" * 100_000
    return json.dumps(notification(alert)).encode()


async def post(session: aiohttp.ClientSession, url: str, index: int) -> tuple[int, float]:
    started = time.monotonic()
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.post(url, data=body(index), headers=headers) as response:
            await response.read()
            return response.status, time.monotonic() - started
    except (aiohttp.ClientError, TimeoutError):
        return 0, time.monotonic() - started


async def run(label: str, source: Path | None, seconds: float, rate: float) -> dict[str, Any]:
    admin = await asyncpg.connect(PG)
    name = f"bench_hung_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    proxy = FreezingProxy("127.0.0.1", 5432)
    proxy_port = await proxy.start()
    with tempfile.TemporaryDirectory() as tmp, socket_port() as port:
        config = Path(tmp) / "config.yaml"
        db_url = f"postgresql+asyncpg://postgres@127.0.0.1:{proxy_port}/{name}"
        config.write_text(CONFIG.format(port=port, state_dir=tmp, db_url=db_url))
        env = {**os.environ, "BENCH_TOKEN": TOKEN, "BENCH_SLACK": "http://127.0.0.1:9/x"}
        if source is not None:
            env["PYTHONPATH"] = str(source)
        server = await asyncio.create_subprocess_exec(
            str(BIN),
            "serve",
            "--config",
            str(config),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/api/v1/alerts"
        timeout = aiohttp.ClientTimeout(total=120)
        try:
            connector = aiohttp.TCPConnector(limit=0)  # every request on the wire at once
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                await wait_ready(session, f"http://127.0.0.1:{port}/healthz")
                for index in range(20):  # warm-up: accepted and ingested
                    await post(session, url, index)
                await asyncio.sleep(2)
                before = rss_mb(server.pid)
                proxy.freeze()
                peak, tasks = before, []
                started = time.monotonic()
                index = 1000
                while time.monotonic() - started < seconds:
                    tasks.append(asyncio.create_task(post(session, url, index)))
                    index += 1
                    peak = max(peak, rss_mb(server.pid))
                    await asyncio.sleep(1 / rate)
                answers = await asyncio.gather(*tasks)
                peak = max(peak, rss_mb(server.pid))
                frozen_for = time.monotonic() - started
                proxy.thaw()
                thawed = time.monotonic()
                while (await post(session, url, 99_999))[0] != 200:  # noqa: ASYNC110 (polling a server)
                    await asyncio.sleep(0.2)
                back_after = time.monotonic() - thawed
                await asyncio.sleep(3)
                after = rss_mb(server.pid)
        finally:
            server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 30)
            except TimeoutError:
                server.kill()
                await server.wait()
            await proxy.stop()
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    latencies = [seconds for _, seconds in answers]
    return {
        "label": label,
        "requests": len(answers),
        "frozen_s": frozen_for,
        "statuses": dict(Counter(status for status, _ in answers)),
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies),
        "at_once": sum(1 for seconds in latencies if seconds < 1.0),
        "rss_before_mb": before,
        "rss_peak_mb": peak,
        "rss_after_mb": after,
        "accepted_again_after_s": back_after,
    }


@contextlib.contextmanager
def socket_port() -> Any:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


async def wait_ready(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not start")


def checkout(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", revision], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=30.0, help="notifications a second")
    parser.add_argument("--baseline", help="git revision to measure side by side")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            source = checkout(args.baseline, Path(tmp))
            results.append(await run(f"baseline {args.baseline}", source, args.seconds, args.rate))
        results.append(await run("this tree", None, args.seconds, args.rate))
    for result in results:
        print(
            f"{result['label']}: {result['requests']} requests in "
            f"{result['frozen_s']:.0f} s frozen, "
            f"answers {result['statuses']}, latency p50 {result['p50_s']:.2f} s "
            f"p99 {result['p99_s']:.2f} s max {result['max_s']:.2f} s "
            f"({result['at_once']} within 1 s: over the budget); RSS "
            f"{result['rss_before_mb']:.0f} MB before, {result['rss_peak_mb']:.0f} MB peak, "
            f"{result['rss_after_mb']:.0f} MB after; accepted again "
            f"{result['accepted_again_after_s']:.1f} s after the thaw"
        )
    if len(results) == 2:
        grown = [r["rss_peak_mb"] - r["rss_before_mb"] for r in results]
        print(f"RSS growth while frozen: baseline {grown[0]:.0f} MB, this tree {grown[1]:.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
