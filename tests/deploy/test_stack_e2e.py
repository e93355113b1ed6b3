"""The whole chain with the real binaries: the simulated product and the service's metrics →
Prometheus with the shipped rules → an HA pair of Alertmanagers with the shipped config → the
webhook → the PagerDuty and Slack fakes → a signed PagerDuty acknowledgement → resolved.

Only the timing knob (`tensafe_ops.sandbox.stack.TEST_TIMING`: `for:` capped at 2 s, 1 s
intervals) differs from what ships; the files are written by the same code as the demo's recipe.
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tensafe_ops.app import make_app
from tensafe_ops.sandbox import pagerduty_world, stack, zendesk_world
from tensafe_ops.sandbox import world as sandbox_world
from tensafe_ops.sandbox.pagerduty_events_api import EVENTS_STATE_KEY, EventsState
from tensafe_ops.sandbox.server import DEMO_ROUTING_KEY, DEMO_SLACK_WEBHOOKS, start_world
from tensafe_ops.settings import Settings, parse_settings
from tests.conftest import require_binary
from tests.deploy.test_dashboard import expressions
from tests.test_demo import SOURCES, wait_for
from tests.webhook.test_receive import free_port
from webhook.config import Credentials, ReceiverConfig

TOKEN = "e2e-alertmanager-token"
PD_SECRET = "e2e-pagerduty-webhook-secret"
PAGES = ("HighErrorRate", "PrivacyBudgetExhausted", "SupportP1SLABreached")

pytestmark = pytest.mark.slow


def quiet_world() -> sandbox_world.World:
    """A small generated world with nothing paging yet: no P1 tickets, every ticket answered,
    every PagerDuty incident acknowledged (so the incident statistics have data)."""
    world = sandbox_world.generate(
        seed=11,
        size=sandbox_world.WorldSize(accounts=60, tickets=120, subscriptions=50, incidents=30),
    )
    now = world.now.timestamp()
    tickets = [t for t in world.zendesk["tickets"] if t["priority"] != "urgent"]
    kept = {t["id"] for t in tickets}
    metrics = [m for m in world.zendesk["ticket_metrics"] if m["ticket_id"] in kept]
    by_ticket = {m["ticket_id"]: m for m in metrics}
    for ticket in tickets:
        if ticket["status"] == "new":
            zendesk_world.reply(ticket, by_ticket[ticket["id"]], now)
    world.zendesk["tickets"], world.zendesk["ticket_metrics"] = tickets, metrics
    someone = world.pagerduty["users"][0]
    for incident in world.pagerduty["incidents"]:
        if incident["status"] == "triggered":
            pagerduty_world.acknowledge(incident, someone, world.now)
    return world


def add_unanswered_p1(world: sandbox_world.World) -> tuple[dict[str, Any], dict[str, Any]]:
    """A P1 ticket opened two hours ago that nobody answered: past its 1-hour target."""
    now = time.time()
    requester = next(u for u in world.zendesk["users"] if u.get("role") == "end-user")
    ticket_id = max(t["id"] for t in world.zendesk["tickets"]) + 1
    ticket, metric = zendesk_world.fresh_ticket(
        random.Random(1),
        ticket_id,
        now - 7200,
        (requester["id"], requester.get("organization_id")),
    )
    ticket["priority"] = "urgent"
    zendesk_world.touch(ticket, now)
    world.zendesk["tickets"].append(ticket)
    world.zendesk["ticket_metrics"].append(metric)
    return ticket, metric


def signed_pagerduty_ack(incident_key: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "event": {
                "id": "01E2E0ACK0000000000000000",
                "event_type": "incident.acknowledged",
                "resource_type": "incident",
                "occurred_at": datetime.now(UTC).isoformat(),
                "agent": {"id": "PE2E001", "summary": "Dana Oncall", "type": "user_reference"},
                "data": {"id": "PE2E002", "type": "incident", "incident_key": incident_key},
            }
        }
    ).encode()
    signature = "v1=" + hmac.new(PD_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-PagerDuty-Signature": signature, "X-Webhook-Id": "e2e-ack-1"}


def e2e_settings(base: Settings) -> Settings:
    """The demo's settings with Alertmanager's bearer token and PagerDuty webhook signing on."""
    webhook = base.webhook.model_copy(
        update={
            "receivers": {
                "/api/v1/alerts": ReceiverConfig(auth=Credentials(bearer_token=SecretStr(TOKEN)))
            },
            "pagerduty_webhook_secrets": [SecretStr(PD_SECRET)],
            "sweep_interval": 1.0,
        }
    )
    return base.model_copy(update={"webhook": webhook})


@contextlib.asynccontextmanager
async def running(argvs: list[list[str]], logs: Path) -> AsyncIterator[None]:
    """Start each command; terminate (then kill) every one of them at the end."""
    started: list[asyncio.subprocess.Process] = []
    try:
        for index, argv in enumerate(argvs):
            with (logs / f"{Path(argv[0]).name}-{index}.log").open("wb") as log:
                started.append(
                    await asyncio.create_subprocess_exec(
                        *argv, stdout=log, stderr=subprocess.STDOUT
                    )
                )
        yield
    finally:
        for process in started:
            if process.returncode is None:
                process.terminate()
        for process in started:
            try:  # Alertmanager waits 10 s to leave its cluster: no need here
                await asyncio.wait_for(process.wait(), 2)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_product_to_pages_and_back_with_prometheus_and_an_alertmanager_pair(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    prometheus_bin = require_binary("prometheus")
    alertmanager_bin = require_binary("prometheus-alertmanager")
    world = quiet_world()
    sandbox = await start_world(world, usage_db_url=f"sqlite+aiosqlite:///{tmp_path / 'u.db'}")
    try:
        settings = parse_settings(
            {
                "server": {"state_dir": str(tmp_path / "state")},
                "exporter": {name: {"interval": 1.0} for name in SOURCES},
            }
        )
        client = await aiohttp_client(make_app(e2e_settings(sandbox.configure(settings))))
        targets = stack.Targets(
            service=f"127.0.0.1:{client.server.port}",
            product=sandbox.urls["product"].removeprefix("http://"),
            prometheus=f"127.0.0.1:{free_port()}",
            alertmanagers=(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"),
            pagerduty_events_url=f"{sandbox.urls['pagerduty_events']}/v2/enqueue",
            cluster_ports=(free_port(), free_port()),
        )
        stack.write_stack(
            tmp_path / "stack",
            targets,
            timing=stack.TEST_TIMING,
            webhook_token=TOKEN,
            pagerduty_routing_key=DEMO_ROUTING_KEY,
        )
        argv = stack.commands(
            tmp_path / "stack",
            targets,
            timing=stack.TEST_TIMING,
            prometheus=prometheus_bin,
            alertmanager=alertmanager_bin,
        )
        pagerduty = next(
            r.app[EVENTS_STATE_KEY] for r in sandbox.runners if EVENTS_STATE_KEY in r.app
        )
        async with running(argv, tmp_path), aiohttp.ClientSession() as http:
            await check_the_chain(client, sandbox, world, targets, pagerduty, http)
    finally:
        await sandbox.stop()


async def check_the_chain(
    client: TestClient,  # type: ignore[type-arg]
    sandbox: Any,
    world: sandbox_world.World,
    targets: stack.Targets,
    pagerduty: EventsState,
    http: aiohttp.ClientSession,
) -> None:
    prometheus = f"http://{targets.prometheus}"
    product = sandbox.urls["product"]

    async def get(url: str, **params: str) -> Any:
        """The JSON answer, or None while the server is not (yet) answering 200."""
        try:
            async with http.get(url, params=params) as response:
                return await response.json() if response.status == 200 else None
        except aiohttp.ClientConnectionError:
            return None

    async def firing() -> dict[str, list[dict[str, str]]]:
        found = await get(f"{prometheus}/api/v1/alerts")
        alerts: dict[str, list[dict[str, str]]] = {}
        for alert in found["data"]["alerts"] if found else []:
            if alert["state"] == "firing":
                alerts.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return alerts

    async def webhook_alerts(state: str) -> dict[str, dict[str, Any]]:
        listed = await (await client.get("/api/v1/alerts", params={"state": state})).json()
        return {a["alertname"]: a for a in listed["alerts"]}

    # The stack is up: Prometheus scrapes all three jobs, the Alertmanagers form a cluster.
    async def all_up() -> bool:
        found = await get(f"{prometheus}/api/v1/query", query="up")
        return bool(found) and sorted(
            (r["metric"]["job"], r["value"][1]) for r in found["data"]["result"]
        ) == [("tensafe-api", "1"), ("tensafe-cluster", "1"), ("tensafe-ops", "1")]

    await wait_for(all_up, "Prometheus scraping tensafe-api, tensafe-cluster, tensafe-ops")
    for address in targets.alertmanagers:

        async def clustered(address: str = address) -> bool:
            status = await get(f"http://{address}/api/v2/status")
            return bool(status) and len(status["cluster"]["peers"]) == 2

        await wait_for(clustered, f"Alertmanager {address} in a two-peer cluster")
    await asyncio.sleep(3)  # a few healthy scrapes before the trouble starts
    assert not set(PAGES) & set(await firing())

    # Drive the product into HighErrorRate and PrivacyBudgetExhausted, and a P1 into breach.
    async with http.patch(
        f"{product}/_sandbox/scenario", json={"error_percent": 50, "epsilon": 10.5}
    ) as response:
        assert response.status == 200
    ticket, metric = add_unanswered_p1(world)

    async def all_firing() -> dict[str, list[dict[str, str]]] | None:
        alerts = await firing()
        return alerts if set(PAGES) <= set(alerts) else None

    alerts = await wait_for(all_firing, f"{PAGES} firing in Prometheus", limit=45)
    assert [labels["tenant"] for labels in alerts["PrivacyBudgetExhausted"]] == ["acme"]
    assert {labels["severity"] for name in PAGES for labels in alerts[name]} == {"critical"}

    # Every query of the dashboard returns data from the real Prometheus.
    for expr in expressions():
        found = await get(f"{prometheus}/api/v1/query", query=expr)
        assert found and found["data"]["result"], f"no data for {expr}"

    # Each reaches the webhook through Alertmanager and pages PagerDuty, once.
    async def paged() -> dict[str, dict[str, Any]] | None:
        stored = await webhook_alerts("firing")
        if not set(PAGES) <= set(stored):
            return None
        keys = {name: pagerduty_key(pagerduty, name) for name in PAGES}
        return stored if all(keys.values()) else None

    stored = await wait_for(paged, "pages in the PagerDuty fake", limit=30)
    now = datetime.now(UTC)
    for name in PAGES:
        alert = stored[name]
        assert alert["severity"] == "critical"
        respond_by = datetime.fromisoformat(alert["respond_by"].replace("Z", "+00:00"))
        assert 800 < (respond_by - now).total_seconds() <= 900  # critical: respond < 15 min

    async def posted() -> list[dict[str, Any]] | None:
        messages = sandbox.slack.for_webhook(DEMO_SLACK_WEBHOOKS["incidents"])
        names = {m["text"].split(":")[0].split()[-1] for m in messages}
        return messages if set(PAGES) <= names else None

    messages = await wait_for(posted, "Slack #incidents posts", limit=30)
    for name in PAGES:
        [message] = [m for m in messages if m["text"].startswith(f"[FIRING] critical {name}:")]
        assert "respond by" in message["text"]
        facts = json.dumps(message["blocks"])
        assert "*Severity*\\ncritical" in facts and "*Respond by*" in facts

    # The warning that SupportP1SLABreached inhibits (same service, same priority) fires in
    # Prometheus but never reaches the webhook.
    assert "SupportP1TicketOpen" in await firing()
    assert "SupportP1TicketOpen" not in await webhook_alerts("firing")

    # Acknowledge HighErrorRate through a signed PagerDuty webhook.
    key = pagerduty_key(pagerduty, "HighErrorRate")
    assert key is not None
    body, headers = signed_pagerduty_ack(key)
    response = await client.post("/api/v1/pagerduty/webhook", data=body, headers=headers)
    assert response.status == 200 and (await response.json())["status"] == "acknowledged"
    acked = (await webhook_alerts("firing"))["HighErrorRate"]
    assert acked["acknowledged_by"] == "Dana Oncall" and acked["acknowledged_via"] == "pagerduty"
    assert acked["breached"] is False

    # Clear the conditions: errors stop (a burst of healthy traffic dilutes the 5-minute window
    # so the test need not wait it out), epsilon back under budget, an agent answers the P1.
    async with http.patch(
        f"{product}/_sandbox/scenario",
        json={"error_percent": 0, "traffic_rps": 200_000, "epsilon": 2.3},
    ) as response:
        assert response.status == 200
    zendesk_world.reply(ticket, metric, time.time())

    async def all_resolved() -> dict[str, dict[str, Any]] | None:
        resolved = await webhook_alerts("resolved")
        return resolved if set(PAGES) <= set(resolved) else None

    await wait_for(all_resolved, "the alerts resolved in the webhook", limit=45)
    for name in PAGES:
        page = pagerduty.alert(pagerduty_key(pagerduty, name) or "")
        assert page is not None

        async def closed(page: Any = page) -> bool:
            return bool(page.status == "resolved")

        await wait_for(closed, f"{name} resolved in PagerDuty")
        # The HA pair sent it twice at most; PagerDuty was paged exactly once.
        assert (page.triggers, page.openings) == (1, 1), name
    assert not set(PAGES) & set(await firing())

    async def resolved_posts() -> bool:
        messages = sandbox.slack.for_webhook(DEMO_SLACK_WEBHOOKS["incidents"])
        texts = [m["text"] for m in messages]
        return all(any(t.startswith(f"[RESOLVED] critical {n}:") for t in texts) for n in PAGES)

    await wait_for(resolved_posts, "resolved posts in Slack #incidents")
    metrics = await (await client.get("/metrics")).text()
    assert 'tensafe_webhook_time_to_acknowledge_seconds_count{severity="critical"} 1.0' in metrics

    # Both Alertmanagers got every alert from Prometheus; between them they notified the
    # webhook as often as it accepted notifications (the peers deduplicate through gossip, and
    # the webhook would store a duplicate that got through once).
    sent = 0.0
    for address in targets.alertmanagers:
        async with http.get(f"http://{address}/metrics") as response:
            theirs = await response.text()
        assert labelled_total(theirs, "alertmanager_alerts_received_total", status="firing") >= len(
            PAGES
        )
        sent += labelled_total(theirs, "alertmanager_notifications_total", integration="webhook")
    assert sent == labelled_total(metrics, "tensafe_webhook_notifications_accepted_total") > 0


def labelled_total(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` that carry `labels`."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def pagerduty_key(pagerduty: EventsState, alertname: str) -> str | None:
    """The dedup key PagerDuty got for the alert named `alertname`, if it was paged."""
    for (_, key), alert in pagerduty.alerts.items():
        if alert.summary.startswith(f"[critical] {alertname}:"):
            return key
    return None
