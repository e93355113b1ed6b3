"""Webhook accept rate: our durable receiver vs a bare aiohttp handler, then an alert storm.

Every server runs in its own process and is loaded from other processes (wrk for the closed
loop, a Python client for the open loop), so the load generator never shares the server's
event loop. Each notification is a group of 10 firing alerts with fingerprints never seen
before, so each one is real work: the 2xx comes once the notification is committed to the
journal; the server's ingester turns it into 10 alert records and 20 outbox rows (critical:
PagerDuty + Slack) in the background, and after each run the benchmark waits until the
journal is empty again, reporting how many notifications were still waiting and how long
ingesting them took.

1. p99 accept latency at an open-loop 500 notifications/s (latency from each request's due
   time, so queueing shows), on fresh stores.
2. Max rate, closed loop (`wrk -t1 -cN`): bare, SQLite and PostgreSQL side by side in
   alternating rounds; the ratio to bare is computed per round and the median reported.
   Afterwards the rows in each store are counted: every 2xx must be there.
3. Alert storm (`bench.webhook_storm`): 10,000 distinct alerts, then the drain rate.

    python -m bench.webhook_accept [--seconds 10] [--rounds 3] [--connections 32]
        [--rate 500] [--no-postgres] [--no-accept] [--no-storm]
        [--storm-alerts 10000] [--drain-seconds 75] [--short]
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import maybe_postgres, percentile
from bench.webhook_load import (
    ALERTS_PER_GROUP,
    ClosedLoop,
    Server,
    journal_pending,
    notification_template,
    run_open_loop,
    run_wrk,
    webhook_settings,
)
from bench.webhook_storm import storm


async def count_rows(db_url: str) -> dict[str, int]:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            counts = {}
            for table in ("webhook_alerts", "webhook_deliveries"):
                result = await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))
                counts[table] = int(result.scalar_one())
        counts["journal"] = await journal_pending(db_url)
        return counts
    finally:
        await engine.dispose()


async def wait_drained(db_url: str, limit: float = 600.0) -> tuple[int, float]:
    """How many notifications were journaled but not yet ingested when the load stopped, and
    how long the server took to ingest them (polled every 0.2 s)."""
    start = time.perf_counter()
    backlog = await journal_pending(db_url)
    left = backlog
    while left and time.perf_counter() - start < limit:
        await asyncio.sleep(0.2)
        left = await journal_pending(db_url)
    return backlog, time.perf_counter() - start


def _drained(backlog: int, seconds: float) -> str:
    if not backlog:
        return "journal empty when the load stopped"
    return f"backlog {backlog} ingested in {seconds:.1f} s ({backlog / seconds:.0f}/s, idle)"


def _line(name: str, r: ClosedLoop, bare: float | None) -> str:
    ratio = f"{r.rate / bare:6.1%}" if bare else "     -"
    return (
        f"  {name:<10} {r.rate:8.0f}/s  ({r.rate * ALERTS_PER_GROUP:7.0f} alerts/s)  "
        f"wrk p99 {r.p99_ms:7.1f} ms  non-2xx {r.non_2xx:>4}  socket errors "
        f"{r.socket_errors:>3}  vs bare {ratio}"
    )


async def open_loop_phase(
    servers: dict[str, Server],
    stores: dict[str, str],
    template: str,
    args: argparse.Namespace,
    accepted: Counter[str],
) -> None:
    """First, on fresh stores, so the result does not depend on how much the closed loop
    wrote before it."""
    print(f"open loop: {args.rate:.0f} notifications/s for {args.seconds}s (1 s warmup)")
    for run, (name, server) in enumerate(servers.items(), start=1):
        latencies, statuses = run_open_loop(server.url, template, run, args.rate, args.seconds)
        accepted[name] += statuses.get(200, 0)
        print(
            f"  {name:<10} p50 {percentile(latencies, 50) * 1000:6.1f} ms  "
            f"p99 {percentile(latencies, 99) * 1000:6.1f} ms  "
            f"max {max(latencies) * 1000:7.1f} ms  "
            f"statuses {dict(sorted(statuses.items()))}"
        )
        if name in stores:
            print(f"  {'':<10} {_drained(*await wait_drained(stores[name]))}")


async def closed_loop_phase(
    servers: dict[str, Server],
    stores: dict[str, str],
    template: str,
    args: argparse.Namespace,
    accepted: Counter[str],
) -> None:
    """Rounds of bare, SQLite, PostgreSQL back to back; each ratio is taken within a round."""
    print(f"\nclosed loop: wrk -t1 -c{args.connections} -d{args.seconds}s, 10 alerts/group")
    rates: dict[str, list[float]] = {name: [] for name in servers}
    run = 100  # the open loop used 1..len(servers)
    for round_no in range(1, args.rounds + 1):
        print(f" round {round_no}")
        bare = 0.0
        for name, server in servers.items():
            run += 1
            r = run_wrk(server.url, template, run, args.seconds, args.connections)
            rates[name].append(r.rate)
            accepted[name] += r.accepted
            bare = r.rate if name == "bare" else bare
            print(_line(name, r, None if name == "bare" else bare))
            if name in stores:  # each run starts with an empty journal
                print(f"  {'':<10} {_drained(*await wait_drained(stores[name]))}")
    print("\nmedian of rounds")
    print(f"  bare       {statistics.median(rates['bare']):8.0f}/s")
    for name in list(servers)[1:]:
        ratios = [ours / bare for ours, bare in zip(rates[name], rates["bare"], strict=True)]
        print(
            f"  {name:<10} {statistics.median(rates[name]):8.0f}/s  "
            f"{statistics.median(ratios):6.1%} of bare (per-round ratios: "
            + ", ".join(f"{x:.1%}" for x in ratios)
            + ")"
        )


async def accept_benchmark(args: argparse.Namespace, tmp: Path) -> None:
    template = notification_template()
    async with maybe_postgres(args.postgres) as pg_url:
        stores = {"sqlite": f"sqlite+aiosqlite:///{tmp / 'sqlite' / 'state.db'}"}
        if pg_url is not None:
            stores["postgresql"] = pg_url
        servers = {"bare": Server.start(None, tmp / "bare.log")}
        for name, url in stores.items():
            servers[name] = Server.start(webhook_settings(tmp / name, url), tmp / f"{name}.log")
        accepted: Counter[str] = Counter()
        try:
            await open_loop_phase(servers, stores, template, args, accepted)
            await closed_loop_phase(servers, stores, template, args, accepted)
        finally:
            for server in servers.values():
                server.stop()
        print("\ndurability: every 2xx is in the store (counted after a graceful stop)")
        for name, url in stores.items():
            counts = await count_rows(url)
            expected = accepted[name] * ALERTS_PER_GROUP
            journaled = counts["journal"] * ALERTS_PER_GROUP
            stored = counts["webhook_alerts"] + journaled
            verdict = "OK" if stored >= expected else "LOST ALERTS"
            print(
                f"  {name:<10} 2xx notifications {accepted[name]}, alerts expected >= {expected}, "
                f"stored {counts['webhook_alerts']} (+ {journaled} still in the journal), "
                f"outbox rows {counts['webhook_deliveries']}  {verdict}"
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    parser.add_argument("--no-accept", dest="accept", action="store_false")
    parser.add_argument("--no-storm", dest="storm", action="store_false")
    parser.add_argument("--storm-alerts", type=int, default=10_000)
    parser.add_argument("--drain-seconds", type=float, default=75.0)
    parser.add_argument(
        "--short",
        action="store_true",
        help="a quick look (~3 minutes): 3 s runs, one round, a 2,000-alert storm drained 15 s",
    )
    args = parser.parse_args()
    if args.short:
        args.seconds, args.rounds, args.storm_alerts, args.drain_seconds = 3, 1, 2000, 15.0
    with tempfile.TemporaryDirectory() as tmp:
        if args.accept:
            await accept_benchmark(args, Path(tmp))
        if args.storm:
            await storm(Path(tmp) / "storm", args.storm_alerts, args.drain_seconds)


if __name__ == "__main__":
    asyncio.run(main())
