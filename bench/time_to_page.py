"""Time to page: from the start of Alertmanager's POST to the PagerDuty trigger arriving.

Open loop: notification n is due at start + n/rate whatever happened to earlier ones, each
with one new critical alert routed to PagerDuty only. The PagerDuty fake never throttles (our
destination's rate limit is set far above the load, so only our own latency is measured) and
timestamps every trigger as it arrives, with `time.monotonic()`, the same clock the client uses
in its own process. Side by side in the same run, per rate: the floor, a forwarder that POSTs
the trigger from the request handler itself (no storage, no queue: the least any receiver
that pages can take), then the real service on SQLite (a file) and on a fresh PostgreSQL
database, each in its own process. Accept latency (the 2xx, counted from each request's due
time) is reported beside it.

    python -m bench.time_to_page [--rates 10,50] [--seconds 20] [--warmup 2] [--no-postgres]
"""

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import maybe_postgres, percentile, serve
from bench.webhook_load import (
    Sent,
    Server,
    ServerKind,
    notification_template,
    open_loop_requests,
    webhook_settings,
)
from tensafe_ops.sandbox import pagerduty_events_api
from tensafe_ops.sandbox.faults import Faults

ROUTING_KEY = "R0UT1NGKEY0000000000000000000077"
ARRIVAL_WAIT = 30.0
"""Seconds after the last request to wait for pages still on their way."""
TARGETS = {10.0: ("p50", 50.0), 50.0: ("p99", 250.0)}
"""Issue 14's targets: p50 <= 50 ms at 10/s, p99 <= 250 ms at 50/s."""


class Arrivals:
    """When each PagerDuty trigger first arrived at the fake, by the alert's fingerprint
    (dedup keys are `tensafe:<fingerprint>` plus, since issue 12, `:<startsAt>`)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.arrived = asyncio.Event()

    async def wait_for(self, keys: set[str]) -> None:
        """Until every key has arrived."""
        while not keys <= self.at.keys():
            self.arrived.clear()
            await self.arrived.wait()

    def middleware(self) -> Any:
        @web.middleware
        async def record(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            response = await handler(request)
            if 200 <= response.status < 300:
                key = json.loads(await request.read()).get("dedup_key") or ""
                self.at.setdefault(key.split(":")[1], time.monotonic())
                self.arrived.set()
            return response

        return record


@dataclass(frozen=True)
class Result:
    pages: list[float]
    """Seconds from the POST's start to the trigger's arrival, for the measured requests."""
    missing: int
    accept: list[float]
    """Seconds from each measured request's due time to its answer."""
    non_2xx: int


def fingerprint(run: int, n: int) -> str:
    """The fingerprint of the single alert of request n (`bench.webhook_load.body_for`)."""
    return f"{run:04x}{n:08x}0000"


async def measure(
    server: Server, arrivals: Arrivals, run: int, rate: float, args: argparse.Namespace
) -> Result:
    template = notification_template("critical", alerts_per_group=1)
    loop = asyncio.get_running_loop()
    # In a thread: the fake lives on this loop and must keep answering meanwhile.
    sent: list[Sent] = await loop.run_in_executor(
        None, open_loop_requests, server.url, template, run, rate, args.seconds, args.warmup
    )
    accepted = [s for s in sent if s.measured and s.status == 200]
    keys = {s.n: fingerprint(run, s.n) for s in accepted}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(ARRIVAL_WAIT):
            await arrivals.wait_for(set(keys.values()))
    pages = [arrivals.at[keys[s.n]] - s.started for s in accepted if keys[s.n] in arrivals.at]
    return Result(
        pages=pages,
        missing=len(accepted) - len(pages),
        accept=[s.finished - s.due for s in sent if s.measured],
        non_2xx=sum(1 for s in sent if s.status != 200),
    )


def _ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000 if values else float("nan")


def report(name: str, result: Result, floor: Result | None) -> None:
    pages, accept = result.pages, result.accept
    line = (
        f"  {name:<11} page p50 {_ms(pages, 50):7.1f}  p95 {_ms(pages, 95):7.1f}  "
        f"p99 {_ms(pages, 99):7.1f}  max {max(pages, default=0) * 1000:7.1f} ms  "
        f"missing {result.missing}  | accept p50 {_ms(accept, 50):6.1f}  "
        f"p99 {_ms(accept, 99):6.1f} ms  non-2xx {result.non_2xx}"
    )
    if floor is not None and floor.pages and pages:
        line += (
            f"  | x floor: p50 {_ms(pages, 50) / _ms(floor.pages, 50):.1f}, "
            f"p99 {_ms(pages, 99) / _ms(floor.pages, 99):.1f}"
        )
    print(line)


def verdict(rate: float, name: str, result: Result) -> None:
    if rate not in TARGETS or not result.pages:
        return
    q, limit = TARGETS[rate]
    value = _ms(result.pages, 50 if q == "p50" else 99)
    met = "met" if value <= limit and result.missing == 0 else "NOT met"
    print(f"    target {q} <= {limit:.0f} ms at {rate:.0f}/s on {name}: {value:.1f} ms, {met}")


def service_settings(state_dir: Path, db_url: str, events_url: str) -> dict[str, Any]:
    destinations = {
        "pagerduty": {
            "default": {
                "routing_key": ROUTING_KEY,
                "events_url": events_url,
                "rate_per_minute": 1_000_000,  # never the bottleneck here
            }
        }
    }
    settings = webhook_settings(state_dir, db_url, destinations)
    settings["webhook"]["routes"] = [
        {"name": "pages", "matchers": ['severity="critical"'], "targets": ["pagerduty:default"]}
    ]
    return settings


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="10,50")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    args = parser.parse_args()
    arrivals = Arrivals()
    fake = pagerduty_events_api.make_app(Faults(), routing_keys={ROUTING_KEY}, per_minute=None)
    fake.middlewares.append(arrivals.middleware())
    fake_runner, fake_url = await serve(fake)
    events_url = f"{fake_url}/v2/enqueue"
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        async with maybe_postgres(args.postgres) as pg_url:
            kinds: dict[str, ServerKind] = {"floor": (events_url, ROUTING_KEY)}
            kinds["sqlite"] = service_settings(
                tmp / "sqlite", f"sqlite+aiosqlite:///{tmp / 'sqlite' / 'state.db'}", events_url
            )
            if pg_url is not None:
                kinds["postgresql"] = service_settings(tmp / "postgresql", pg_url, events_url)
            servers = {n: Server.start(kind, tmp / f"{n}.log") for n, kind in kinds.items()}
            try:
                run = 0
                for rate in (float(r) for r in args.rates.split(",")):
                    print(
                        f"\n{rate:.0f} notifications/s for {args.seconds:.0f} s "
                        f"(+{args.warmup:.0f} s warmup), 1 new critical alert each; times in ms"
                    )
                    results: dict[str, Result] = {}
                    for name, server in servers.items():
                        run += 1
                        results[name] = await measure(server, arrivals, run, rate, args)
                        floor = results.get("floor") if name != "floor" else None
                        report(name, results[name], floor)
                    for name, result in results.items():
                        if name != "floor":
                            verdict(rate, name, result)
            finally:
                for server in servers.values():
                    server.stop()
    await fake_runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
