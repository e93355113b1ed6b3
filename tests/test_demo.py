"""End to end: the service on the simulated world, as `tensafe-ops serve --demo` runs it."""

import asyncio
import json
import re
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from exporter import RUNNER_KEY
from tensafe_ops.app import make_app
from tensafe_ops.clock import demo_clock
from tensafe_ops.sandbox import world as sandbox_world
from tensafe_ops.sandbox.banner import sample_alert
from tensafe_ops.sandbox.server import DEMO_CREDENTIALS, RunningWorld, start_world
from tensafe_ops.settings import parse_settings
from tests.conftest import assert_promtool_accepts_metrics, require_binary
from tests.contracts import alertmanager_examples
from tests.webhook.am import load

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


def total(text: str, family: str) -> float:
    """The sum of a family's samples in an exposition (0 if absent)."""
    return sum(
        sample.value
        for metrics in text_string_to_metric_families(text)
        if metrics.name == family
        for sample in metrics.samples
    )


async def wait_for(check: Any, what: str, limit: float = 30.0) -> Any:
    """Poll the coroutine function `check` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + limit
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {limit}s")
        await asyncio.sleep(0.2)
    return result


async def test_pages_and_tickets_it_sends_come_back_through_the_sources_it_reads(
    aiohttp_client, demo_world: RunningWorld, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """One world: the page is an incident the PagerDuty source counts, the Zendesk task a
    ticket of the export the Zendesk source reads (the world does not tick here)."""
    fast = {"interval": 0.5}
    settings = parse_settings(
        {
            "server": {"state_dir": str(tmp_path / "state")},
            "exporter": {name: fast for name in SOURCES},
        }
    )
    client = await aiohttp_client(make_app(demo_world.configure(settings)))
    before = await scrape_until_up(client)
    incidents = total(before, "tensafe_pagerduty_open_incidents")
    tickets = total(before, "tensafe_zendesk_open_tickets")

    page = sample_alert(datetime.now(UTC))
    for body in (page, load("new_customer_info.json")):  # critical: page; info: Zendesk task
        response = await client.post("/api/v1/alerts", json=body)
        assert response.status == 200, await response.text()

    async def counted() -> str | None:
        text = await (await client.get("/metrics")).text()
        done = total(text, "tensafe_pagerduty_open_incidents") == incidents + 1
        return text if done and total(text, "tensafe_zendesk_open_tickets") == tickets + 1 else None

    await wait_for(counted, "the page and the ticket counted on /metrics")
    async with aiohttp.ClientSession() as session:
        events = f"{demo_world.urls['pagerduty_events']}/_sandbox/received"
        async with session.get(events, params={"method": "POST"}) as answer:
            [trigger] = (await answer.json())["received"]
        zendesk = f"{demo_world.urls['zendesk']}/_sandbox/received"
        async with session.get(zendesk, params={"method": "POST"}) as answer:
            [ticket] = (await answer.json())["received"]
    assert trigger["status"] == 202 and trigger["body"]["event_action"] == "trigger"
    assert ticket["status"] == 201 and ticket["path"] == "/api/v2/tickets"
    [incident] = [
        i
        for i in demo_world.world.pagerduty["incidents"]
        if i["incident_key"] == trigger["body"]["dedup_key"]
    ]
    assert incident["status"] == "triggered" and incident["urgency"] == "high"
    [task] = [t for t in demo_world.world.zendesk["tickets"] if "alertmanager" in t["tags"]]
    assert task["subject"] == ticket["body"]["ticket"]["subject"]


# --- `tensafe-ops serve --demo` as a user runs it -----------------------------------------

BIN = Path(sys.executable).parent / "tensafe-ops"


@pytest.fixture
def demo_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """The demo on a world without PagerDuty incidents (so every open incident is a page),
    the PagerDuty source refreshing every second; yields it and its start-up output."""
    world = sandbox_world.generate(
        seed=3, size=sandbox_world.WorldSize(accounts=20, tickets=40, subscriptions=10, incidents=0)
    )
    world_file = tmp_path / "world.json"
    world_file.write_text(json.dumps(world.to_json()))
    config = tmp_path / "config.yaml"
    config.write_text("exporter:\n  pagerduty:\n    interval: 1\n")
    process = subprocess.Popen(
        [
            *(str(BIN), "serve", "--demo", "--world", str(world_file), "--config", str(config)),
            *("--port", "0", "--state-dir", str(tmp_path / "state")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # the block ends with the scrape config's last line
            lines.append(line.rstrip("\n"))
            if "static_configs" in line:
                break
        yield process, lines
    finally:
        process.terminate()
        process.wait(30)


def field(lines: list[str], label: str) -> str:
    """The first URL on the block's line for `label`."""
    [line] = [entry for entry in lines if entry.strip().startswith(label)]
    found = re.search(r"https?://\S+", line)
    assert found, line
    return found.group(0)


async def test_demo_prints_how_to_use_it_and_its_curl_pages_pagerduty(
    demo_process: tuple[subprocess.Popen[str], list[str]],
) -> None:
    _, lines = demo_process
    text = "\n".join(lines)
    assert "Demo mode" in text, text
    metrics = field(lines, "Metrics")
    base = metrics.removesuffix("/metrics")
    assert field(lines, "Webhook") == f"{base}/api/v1/alerts"
    assert "no auth in the demo" in text
    assert f"{base}/api/v1/deliveries" in text
    upstreams = ("Zendesk", "Stripe", "PagerDuty REST", "PagerDuty Events", "Slack", "TenSafe API")
    for label in upstreams:
        assert field(lines, label).startswith("http://127.0.0.1:"), label
    assert DEMO_CREDENTIALS["pagerduty"]["token"] in text
    assert "scrape_configs:" in text and f'targets: ["{base.removeprefix("http://")}"]' in text
    [curl] = [line.strip() for line in lines if line.strip().startswith("curl ")]
    events = field(lines, "PagerDuty Events").removesuffix("/v2/enqueue")

    async with aiohttp.ClientSession() as session:

        async def scrape() -> str:
            async with session.get(metrics) as answer:
                return await answer.text()

        async def pagerduty_up() -> str | None:
            text = await scrape()
            return text if 'tensafe_exporter_source_up{source="pagerduty"} 1.0' in text else None

        assert total(await wait_for(pagerduty_up, "PagerDuty source up"), OPEN) == 0
        since = datetime.now(UTC).isoformat()
        shell = await asyncio.create_subprocess_exec(  # the command exactly as printed
            "sh",
            "-c",
            curl.replace("curl ", f"{require_binary('curl')} ", 1),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(shell.communicate(), 30)
        assert shell.returncode == 0 and json.loads(out)["status"] == "accepted", out

        async def paged() -> list[dict[str, Any]]:
            url = f"{events}/_sandbox/received"
            async with session.get(url, params={"since": since, "method": "POST"}) as answer:
                received: list[dict[str, Any]] = (await answer.json())["received"]
                return received

        [trigger] = await wait_for(paged, "the page at the fake PagerDuty")
        assert trigger["status"] == 202 and trigger["body"]["event_action"] == "trigger"
        assert trigger["body"]["payload"]["severity"] == "critical"

        async def counted() -> bool:
            return total(await scrape(), OPEN) == 1

        await wait_for(counted, "the page as an open incident on /metrics")


OPEN = "tensafe_pagerduty_open_incidents"

BUSINESS = ("tensafe_zendesk_", "tensafe_stripe_", "tensafe_pagerduty_", "tensafe_usage_",
            "tensafe_health_", "tensafe_account_")  # fmt: skip
"""Families of business values (not the exporter's own bookkeeping)."""


def business_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        if f.name.startswith(BUSINESS)
        for s in f.samples
    }


class Elapsed:
    """Seconds since start as the test says (a monotonic counter it can move by an hour)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


async def test_a_frozen_world_file_serves_the_same_values_an_hour_later(
    aiohttp_client, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # A world file whose `now` is days before the machine's clock.
    then = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    generated = sandbox_world.generate(3, sandbox_world.WorldSize().scaled(0.3), then)
    world_file = tmp_path / "world.json"
    world_file.write_text(json.dumps(generated.to_json()))
    world = sandbox_world.load(world_file)

    elapsed = Elapsed()
    frozen = demo_clock(world.now, "world", frozen=True, elapsed=elapsed)
    moving = demo_clock(world.now, "world", elapsed=elapsed)  # the same world, not frozen
    use = {"clock": frozen}
    running = await start_world(
        world,
        usage_db_url=f"sqlite+aiosqlite:///{tmp_path / 'usage.db'}",
        tick_every=None,  # --frozen: no ticks
        clock=frozen,
        zendesk_export_window=0.08,  # 10 per 0.08 s: room for the source's 6,000/min below
    )
    before = json.dumps(world.to_json(), sort_keys=True)  # as served (start-up adds a service)
    settings = parse_settings(
        {
            "server": {"state_dir": str(tmp_path / "state")},
            "exporter": {"zendesk": {"rate_limit_per_minute": 6000}},  # no 6 s waits here
        }
    )

    def exporter_clock() -> datetime:
        return use["clock"]()

    app = make_app(running.configure(settings), exporter_clock=exporter_clock)
    client = await aiohttp_client(app)
    first = business_values(await scrape_until_up(client))

    # Ages are measured from the world's `now`, not from today: the oldest open unanswered
    # normal-priority ticket's age, worked out from the world file itself.
    metrics = {m["ticket_id"]: m for m in world.zendesk["ticket_metrics"]}
    waiting = [
        world.now - datetime.fromisoformat(t["created_at"])
        for t in world.zendesk["tickets"]
        if t["status"] in ("new", "open", "pending", "hold")
        and t["priority"] == "normal"
        and (metrics[t["id"]].get("reply_time_in_minutes") or {}).get("calendar") is None
    ]
    oldest = ("tensafe_zendesk_oldest_unanswered_age_seconds", (("priority", "p3"),))
    assert waiting and first[oldest] == max(waiting).total_seconds()

    async def refresh_all() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        runner = app[RUNNER_KEY]
        for scheduled in runner.sources:  # health last: it joins the others
            assert await runner.refresh_once(scheduled)
        return business_values(await (await client.get("/metrics")).text())

    elapsed.seconds += 3600  # an hour later
    assert await refresh_all() == first
    assert json.dumps(world.to_json(), sort_keys=True) == before  # nothing changed the world

    use["clock"] = moving  # not frozen: its clock has moved on by the hour
    later = await refresh_all()
    assert later[oldest] == first[oldest] + 3600
    assert later != first
    await running.stop()


def test_demo_prints_a_prometheus_alertmanager_recipe_over_valid_files(
    demo_process: tuple[subprocess.Popen[str], list[str]], tmp_path: Path
) -> None:
    """After the block: one line starting Prometheus and Alertmanager on the shipped rules,
    wired to this demo, over files promtool and amtool accept."""
    process, lines = demo_process
    assert process.stdout is not None
    recipe = ""
    for line in process.stdout:
        if line.strip().startswith("prometheus --config.file="):
            recipe = line.strip()
            break
    prometheus, alertmanager = (shlex.split(command) for command in recipe.split(" & "))
    assert recipe.endswith(" &") and alertmanager[0] == "prometheus-alertmanager"
    config = Path(prometheus[1].removeprefix("--config.file="))
    assert config.parent == (tmp_path / "state" / "stack").resolve()
    product = field(lines, "TenSafe API").removesuffix("/metrics").removeprefix("http://")
    scraped = yaml.safe_load(config.read_text())["scrape_configs"]
    assert {job["job_name"]: job["static_configs"][0]["targets"] for job in scraped} == {
        "tensafe-api": [product],
        "tensafe-cluster": [product],
        "tensafe-ops": [field(lines, "Metrics").removesuffix("/metrics").removeprefix("http://")],
    }
    for argv in (
        [require_binary("promtool"), "check", "config", str(config)],
        [require_binary("amtool"), "check-config", alertmanager[1].split("=", 1)[1]],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
