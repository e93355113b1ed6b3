"""Two replicas on one PostgreSQL database: the vendor's rate limit for the deployment, and
how late pages are when the replica sending them is SIGKILLed.

1. Budget: a burst of critical alerts (one PagerDuty trigger each) accepted by the replicas
   in turn, then the drain into the PagerDuty fake, which answers 429 beyond 120 events per
   minute per routing key, exactly as PagerDuty does. One replica, then two side by side:
   events per sliding 60 s window and 429s, over `--drain-seconds`.
2. Takeover: an open loop of `--rate` notifications/s (one new critical alert each) to the
   replica that does not send the pages, against a PagerDuty fake that never throttles (our
   destination's limit set far above the load). After `--kill-after` seconds the replica that
   sends them is SIGKILLed, holding claimed deliveries. Reported: how late pages were
   (arrival minus the start of their POST) before and after the kill, and when the last page
   accepted before the kill arrived, counted from the kill. Target: none later than 30 s.

Every replica runs in its own process, served like `tensafe-ops serve`; the fakes run here.

    python -m bench.replicas [--only budget|takeover] [--alerts 400] [--drain-seconds 75]
        [--rate 40] [--seconds 30] [--kill-after 10]
"""

import argparse
import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import fresh_postgres, percentile, serve
from bench.time_to_page import Arrivals, fingerprint
from bench.webhook_load import (
    TOKEN,
    Sent,
    Server,
    body_for,
    notification_template,
    open_loop_requests,
    webhook_settings,
)
from bench.webhook_storm import Answer, max_in_window, recorder
from tensafe_ops.sandbox import pagerduty_events_api
from tensafe_ops.sandbox.faults import Faults

ROUTING_KEY = "R0UT1NGKEY0000000000000000000140"
OWNED = 'tensafe_webhook_destination_owned{destination="default",target="pagerduty"} 1.0'


def replica_settings(
    state_dir: Path, db_url: str, events_url: str, rate_per_minute: float
) -> dict[str, Any]:
    destinations = {
        "pagerduty": {
            "default": {
                "routing_key": ROUTING_KEY,
                "events_url": events_url,
                "rate_per_minute": rate_per_minute,
            }
        }
    }
    settings = webhook_settings(state_dir, db_url, destinations)
    settings["webhook"]["routes"] = [
        {"name": "pages", "matchers": ['severity="critical"'], "targets": ["pagerduty:default"]}
    ]
    return settings


def base_url(server: Server) -> str:
    return server.url.rsplit("/api/", 1)[0]


async def owner_index(servers: list[Server]) -> int | None:
    async with aiohttp.ClientSession() as session:
        for index, server in enumerate(servers):
            async with session.get(f"{base_url(server)}/metrics") as response:
                if OWNED in await response.text():
                    return index
    return None


async def post_burst(servers: list[Server], alerts: int, run: int) -> int:
    """`alerts` critical alerts, 10 per notification, to the replicas in turn."""
    template = notification_template("critical")
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    accepted = 0
    async with aiohttp.ClientSession(headers=headers) as session:
        for n in range(alerts // 10):
            url = servers[n % len(servers)].url
            async with session.post(url, data=body_for(template, run, n)) as response:
                accepted += response.status == 200
    return accepted * 10


async def budget(replicas: int, tmp: Path, args: argparse.Namespace, run: int) -> None:
    answers: list[Answer] = []
    fake = pagerduty_events_api.make_app(Faults(), routing_keys={ROUTING_KEY})  # 120/min
    fake.middlewares.append(recorder(answers))
    fake_runner, fake_url = await serve(fake)
    async with fresh_postgres() as pg_url:
        settings = replica_settings(tmp, pg_url, f"{fake_url}/v2/enqueue", 120)
        servers = [
            Server.start(settings, tmp / f"budget-{replicas}-{i}.log") for i in range(replicas)
        ]
        try:
            started = time.monotonic()
            accepted = await post_burst(servers, args.alerts, run)
            await asyncio.sleep(max(0.0, args.drain_seconds - (time.monotonic() - started)))
            ended = time.monotonic()
        finally:
            for server in servers:
                server.stop()
    await fake_runner.cleanup()
    ok = sorted(t for _, status, t in answers if 200 <= status < 300 and started <= t < ended)
    throttled = sum(1 for _, status, _ in answers if status == 429)
    print(
        f"  {replicas} replica{'s' if replicas > 1 else ' '}: {accepted} alerts accepted; over "
        f"{ended - started:.0f} s {len(ok)} events accepted by PagerDuty "
        f"({len(ok) / (ended - started) * 60:.1f}/min), most in any 60 s window "
        f"{max_in_window(ok, 60.0)} (limit 120), 429s: {throttled}"
    )


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:8.1f}" if values else "       -"


async def takeover(tmp: Path, args: argparse.Namespace) -> None:
    arrivals = Arrivals()
    fake = pagerduty_events_api.make_app(Faults(), routing_keys={ROUTING_KEY}, per_minute=None)
    fake.middlewares.append(arrivals.middleware())
    fake_runner, fake_url = await serve(fake)
    async with fresh_postgres() as pg_url:
        settings = replica_settings(tmp, pg_url, f"{fake_url}/v2/enqueue", 1_000_000)
        servers = [Server.start(settings, tmp / f"takeover-{i}.log") for i in range(2)]
        try:
            await post_burst(servers, 10, run=9000)  # someone becomes the pages' sender
            owner = None
            while owner is None:
                await asyncio.sleep(0.2)
                owner = await owner_index(servers)
            receiver = servers[1 - owner]
            loop = asyncio.get_running_loop()
            template = notification_template("critical", alerts_per_group=1)
            load = loop.run_in_executor(
                None, open_loop_requests, receiver.url, template, 9001, args.rate, args.seconds, 0.0
            )
            await asyncio.sleep(args.kill_after + 1.5)  # the client process starts in ~1.5 s
            killed_at = time.monotonic()
            servers[owner].process.kill()  # SIGKILL
            sent: list[Sent] = await load
            keys = {fingerprint(9001, s.n) for s in sent if s.status == 200}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrivals.wait_for(keys), 120)
            new_owner = await owner_index([receiver])
        finally:
            for server in servers:
                server.stop()
    await fake_runner.cleanup()
    missing = [s for s in sent if s.status == 200 and fingerprint(9001, s.n) not in arrivals.at]
    if missing:
        print(f"  {len(missing)} accepted notifications were never paged (within 120 s)")
    accepted = [s for s in sent if s.status == 200 and s not in missing]
    before = [s for s in accepted if s.finished < killed_at]
    late = {s.n: arrivals.at[fingerprint(9001, s.n)] - s.started for s in accepted}
    stuck = [
        arrivals.at[fingerprint(9001, s.n)] - killed_at
        for s in before
        if arrivals.at[fingerprint(9001, s.n)] > killed_at
    ]
    after = [late[s.n] for s in accepted if s.started >= killed_at]
    print(
        f"  {len(accepted)} notifications accepted at {args.rate:.0f}/s, the sender SIGKILLed "
        f"{args.kill_after:.0f} s in; the survivor sends the pages now: {new_owner == 0}"
    )
    print("  time to page, ms:            p50      p99      max")
    print(
        f"    accepted before the kill {_ms([late[s.n] for s in before], 50)} "
        f"{_ms([late[s.n] for s in before], 99)} {_ms([late[s.n] for s in before], 100)}"
    )
    print(f"    accepted after the kill  {_ms(after, 50)} {_ms(after, 99)} {_ms(after, 100)}")
    print(
        f"  pages accepted before the kill that were still on their way: {len(stuck)}; the "
        f"last arrived {max(stuck, default=0.0):.2f} s after the kill "
        f"({'met' if max(stuck, default=0.0) <= 30 else 'NOT met'}: <= 30 s)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=("budget", "takeover"))
    parser.add_argument("--alerts", type=int, default=400)
    parser.add_argument("--drain-seconds", type=float, default=75.0)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--kill-after", type=float, default=10.0)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    kept = tempfile.mkdtemp() if args.keep_logs else None
    with contextlib.nullcontext(kept) if kept else tempfile.TemporaryDirectory() as tmp_dir:
        if kept:
            print(f"logs in {tmp_dir}")
        tmp = Path(tmp_dir)
        if args.only in (None, "budget"):
            print(f"budget: {args.alerts} critical alerts at once, PagerDuty fake at 120/min")
            await budget(1, tmp, args, run=1)
            await budget(2, tmp, args, run=2)
        if args.only in (None, "takeover"):
            print("\ntakeover: two replicas, the one sending the pages SIGKILLed under load")
            await takeover(tmp, args)


if __name__ == "__main__":
    asyncio.run(main())
