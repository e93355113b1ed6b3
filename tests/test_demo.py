"""End to end: the service on the simulated world, as `tensafe-ops serve --demo` runs it."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tensafe_ops.app import make_app
from tensafe_ops.sandbox import world as sandbox_world
from tensafe_ops.sandbox.server import RunningWorld, start_world
from tensafe_ops.settings import parse_settings
from tests.conftest import assert_promtool_accepts_metrics
from tests.contracts import alertmanager_examples

SOURCES = ("zendesk", "pagerduty", "stripe", "usage", "health")


@pytest.fixture
async def demo_world(tmp_path: Path) -> AsyncIterator[RunningWorld]:
    world = sandbox_world.generate(seed=7, size=sandbox_world.WorldSize().scaled(0.5))
    running = await start_world(world, usage_db_url=f"sqlite+aiosqlite:///{tmp_path / 'usage.db'}")
    yield running
    await running.stop()


async def scrape_until_up(client: TestClient, limit: float = 60.0) -> str:  # type: ignore[type-arg]
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        text = await (await client.get("/metrics")).text()
        families = list(text_string_to_metric_families(text))
        up = {
            s.labels["source"]: s.value
            for f in families
            if f.name == "tensafe_exporter_source_up"
            for s in f.samples
        }
        # health is up while it waits for its inputs' first syncs; it scores once all are in
        inputs = [
            s.value
            for f in families
            if f.name == "tensafe_health_inputs_available"
            for s in f.samples
        ]
        if all(up.get(name) == 1 for name in SOURCES) and inputs and all(inputs):
            return text
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"sources not all up after {limit}s: {up}")
        await asyncio.sleep(0.5)


async def test_demo_serves_every_source_up_and_promtool_clean(
    aiohttp_client, demo_world: RunningWorld, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    fast = {"interval": 2.0}
    settings = parse_settings(
        {
            "server": {"state_dir": str(tmp_path / "state")},
            "exporter": {name: fast for name in SOURCES},
        }
    )
    app = make_app(demo_world.configure(settings))
    client = await aiohttp_client(app)
    text = await scrape_until_up(client)
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "tensafe_exporter_demo_mode" in names
    assert "tensafe_exporter_demo_mode 1.0" in text
    for expected in (
        "tensafe_zendesk_open_tickets",
        "tensafe_stripe_mrr",
        "tensafe_pagerduty_open_incidents",
        "tensafe_usage_daily_active_users",
        "tensafe_health_customers",
    ):
        assert any(n.startswith(expected) for n in names), (
            f"{expected} missing from {sorted(names)}"
        )
    await assert_promtool_accepts_metrics(text.encode())

    # The webhook half is on in the demo (auth off, as it says) and sends to the fakes.
    firing = alertmanager_examples()["firing"]
    response = await client.post("/api/v1/alerts", json=firing)
    assert response.status == 200, await response.text()
    for _ in range(100):
        if demo_world.slack.messages:
            break
        await asyncio.sleep(0.1)
    assert demo_world.slack.messages, "the critical alert never reached the Slack fake"
    alerts = await (await client.get("/api/v1/alerts")).json()
    assert any(a["severity"] == "critical" for a in alerts["alerts"])
