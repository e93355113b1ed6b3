"""Upstream requests per steady-state refresh vs re-listing everything, on the benchmark world.

Builds the 100,000-ticket / 10,000-subscription world, serves the Zendesk and Stripe fakes on
loopback and runs the real sources (real zenpy and stripe SDKs) against them:
1. a first full sync (what an exporter that re-lists everything pays on every refresh),
2. the world changes (at most ~1,000 objects in all), 3. one steady-state refresh.

    python -m bench.sync_requests [--minutes 10]
"""

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench.common import EXPORT_WINDOW, serve
from exporter.config import StripeConfig, ZendeskConfig
from exporter.sources import stripe, zendesk
from exporter.sources.base import Source, SourceContext
from exporter.stats import UpstreamStats
from tensafe_ops.sandbox import stripe_api, stripe_world, zendesk_api, zendesk_world
from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.server import DEMO_CREDENTIALS
from tensafe_ops.sandbox.world import BENCH_SIZE, World, generate
from tensafe_ops.storage import StateStore, create_engine, migrate

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class NoFacts:
    def facts(self, source: str) -> Mapping[str, Any] | None:
        return None


def requests_of(stats: UpstreamStats, source: str) -> int:
    return sum(n for (name, _code), n in stats.requests.items() if name == source)


async def refresh_until_synced(source: Source, world: World) -> None:
    """A first sync may span refreshes (it yields before its timeout); run it to the end."""
    for _ in range(50):
        try:
            await source.refresh(world.now)
            return
        except Exception as exc:
            print(f"  ({source.name}: first sync continues after: {exc})")
    raise RuntimeError(f"{source.name} never finished its first sync")


def changes_since(world: World, previous: datetime) -> tuple[int, int]:
    cutoff = previous.isoformat()
    tickets = sum(1 for t in world.zendesk["tickets"] if t["updated_at"] > cutoff)
    events = sum(1 for e in world.stripe["events"] if e["created"] > previous.timestamp())
    return tickets, events


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="world time between refreshes")
    args = parser.parse_args()
    started = time.perf_counter()
    world = generate(42, BENCH_SIZE, NOW)
    print(
        f"world: {len(world.zendesk['tickets'])} tickets, "
        f"{len(world.stripe['subscriptions'])} subscriptions, {len(world.accounts)} accounts "
        f"(built in {time.perf_counter() - started:.0f}s)"
    )
    zd_runner, zd_url = await serve(
        zendesk_api.make_app(
            world,
            Faults(),
            credentials=DEMO_CREDENTIALS["zendesk"],
            limit_window_seconds=EXPORT_WINDOW,
        )
    )
    st_runner, st_url = await serve(
        stripe_api.make_app(world, Faults(), credentials=DEMO_CREDENTIALS["stripe"])
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'state.db'}")
        await migrate(engine)
        stats = UpstreamStats()
        context = SourceContext(StateStore(engine), stats, lambda: world.now, NoFacts())
        zd = zendesk.create(
            ZendeskConfig(
                base_url=zd_url,
                email=DEMO_CREDENTIALS["zendesk"]["email"],
                token=SecretStr(DEMO_CREDENTIALS["zendesk"]["token"]),
                rate_limit_per_minute=6000,  # in step with the fake's EXPORT_WINDOW
                timeout=3600,
            ),
            context,
        )
        st = stripe.create(
            StripeConfig(
                base_url=st_url,
                api_key=SecretStr(DEMO_CREDENTIALS["stripe"]["api_key"]),
                timeout=3600,
            ),
            context,
        )
        full: dict[str, int] = {}
        for source in (zd, st):
            before = requests_of(stats, source.name)
            began = time.perf_counter()
            await refresh_until_synced(source, world)
            full[source.name] = requests_of(stats, source.name) - before
            print(
                f"{source.name}: full sync {full[source.name]} requests, "
                f"{time.perf_counter() - began:.1f}s"
            )

        previous = world.now
        world.now = previous + timedelta(minutes=args.minutes)
        zendesk_world.advance(world, random.Random(1), previous)
        stripe_world.advance(world, random.Random(2), previous)
        tickets, events = changes_since(world, previous)
        print(
            f"\nchanges after {args.minutes:g} world minutes: {tickets} tickets, "
            f"{events} Stripe events ({tickets + events} in all)\n"
        )

        print("source     re-list everything   steady-state refresh   ratio")
        for source in (zd, st):
            before = requests_of(stats, source.name)
            await source.refresh(world.now)
            steady = requests_of(stats, source.name) - before
            print(
                f"{source.name:<10} {full[source.name]:>18}   {steady:>20}   "
                f"{full[source.name] / max(steady, 1):>5.0f}x"
            )
            await source.aclose()
        await engine.dispose()
    await zd_runner.cleanup()
    await st_runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
