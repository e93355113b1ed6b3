"""Alertmanager notification in, messages out: the whole service (real store on SQLite and
PostgreSQL, real dispatcher) delivering to the Slack, PagerDuty and Zendesk fakes."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tensafe_ops.sandbox import pagerduty_events_api, slack_api, zendesk_api
from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.world import World, WorldSize, generate
from tests.conftest import FakeClock
from tests.contracts import alertmanager_examples
from tests.webhook.am import API, AUTH, ingest, load, webhook_app

CONTRACT = alertmanager_examples()
ROUTING_KEY = "R0UT1NGKEY0000000000000000000001"
INCIDENTS, ALERTS = "T1/B1/incidents-secret", "T1/B2/alerts-secret"
ZENDESK = {"email": "ops@tensafe.example", "token": "zendesk-token"}
FAST = {"poll_interval": 0.02, "backoff_base": 1, "request_timeout": 5, "lease_seconds": 30}

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
WORLD_KEY = web.AppKey("world", World)


class Fakes:
    def __init__(self, slack: TestServer, pagerduty: TestServer, zendesk: TestServer) -> None:
        self.slack, self.pagerduty, self.zendesk = slack, pagerduty, zendesk

    @property
    def inbox(self) -> slack_api.SlackInbox:
        return self.slack.app[slack_api.SLACK_INBOX_KEY]

    @property
    def paged(self) -> pagerduty_events_api.EventsState:
        return self.pagerduty.app[pagerduty_events_api.EVENTS_STATE_KEY]

    def tickets(self, tag: str) -> list[dict[str, Any]]:
        world = self.zendesk.app[WORLD_KEY]
        return [t for t in world.zendesk["tickets"] if tag in t.get("tags", [])]

    def destinations(self) -> dict[str, Any]:
        return {
            "slack": {
                "incidents": {
                    "webhook_url": str(self.slack.make_url(f"/services/{INCIDENTS}")),
                    "rate_per_second": 50,
                },
                "alerts": {"webhook_url": str(self.slack.make_url(f"/services/{ALERTS}"))},
            },
            "pagerduty": {
                "default": {
                    "routing_key": ROUTING_KEY,
                    "events_url": str(self.pagerduty.make_url("/v2/enqueue")),
                }
            },
            "zendesk": {"default": {"base_url": str(self.zendesk.make_url("")), **ZENDESK}},
        }


@pytest.fixture
async def fakes(aiohttp_server: ServerFactory) -> Fakes:
    inbox = slack_api.SlackInbox(webhooks={INCIDENTS, ALERTS}, per_second=100)
    world = generate(seed=3, size=WorldSize(accounts=2, tickets=1, subscriptions=0, incidents=0))
    zendesk = zendesk_api.make_app(world, Faults(), credentials=ZENDESK)
    zendesk[WORLD_KEY] = world
    return Fakes(
        await aiohttp_server(slack_api.make_app(Faults(), inbox=inbox)),
        await aiohttp_server(pagerduty_events_api.make_app(Faults(), routing_keys={ROUTING_KEY})),
        await aiohttp_server(zendesk),
    )


async def eventually(done: Callable[[], bool], seconds: float = 10) -> None:
    """Wait for the background dispatcher to get somewhere (polls; it runs on its own)."""
    for _ in range(int(seconds / 0.02)):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the dispatcher did not deliver in time")


async def deliveries_in(
    client: TestClient[Any, Any], state: str, count: int
) -> list[dict[str, Any]]:
    """The deliveries in `state`, once `count` of them are recorded (a fake may see a message
    a moment before the outbox records the outcome)."""
    for _ in range(250):
        response = await client.get("/api/v1/deliveries", params={"state": state}, headers=API)
        found: list[dict[str, Any]] = (await response.json())["deliveries"]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"only {len(found)} deliveries {state}, expected {count}")


async def post(client: TestClient[Any, Any], body: Any) -> None:
    response = await client.post("/api/v1/alerts", json=body, headers=AUTH)
    assert response.status == 200, await response.text()
    await ingest(client.app)


async def test_critical_pages_and_posts_then_resolves(
    aiohttp_client: ClientFactory, tmp_path: Path, state_db_url: str, clock: FakeClock, fakes: Fakes
) -> None:
    app = webhook_app(
        tmp_path, state_db_url, clock, destinations=fakes.destinations(), dispatch=FAST
    )
    client = await aiohttp_client(app)

    await post(client, CONTRACT["firing"])
    await eventually(lambda: len(fakes.paged.alerts) == 2 and len(fakes.inbox.messages) == 2)

    for paged in fakes.paged.alerts.values():
        assert (paged.status, paged.severity, paged.triggers) == ("triggered", "critical", 1)
        assert paged.summary.startswith("[critical] HighErrorRate: ")
    headers = [m.payload["blocks"][0]["text"]["text"] for m in fakes.inbox.messages]
    assert headers == ["🔥 FIRING · critical · HighErrorRate"] * 2
    assert {m.webhook for m in fakes.inbox.messages} == {INCIDENTS}

    clock.advance(minutes=10)
    await post(client, CONTRACT["resolved"])
    await eventually(
        lambda: (
            {a.status for a in fakes.paged.alerts.values()} == {"resolved"}
            and len(fakes.inbox.messages) == 4
        )
    )

    assert len(await deliveries_in(client, "sent", 8)) == 8
    metrics = await (await client.get("/metrics")).text()
    assert 'tensafe_webhook_deliveries_total{outcome="sent",target="pagerduty"} 4.0' in metrics
    assert 'tensafe_webhook_deliveries_total{outcome="sent",target="slack"} 4.0' in metrics


async def test_a_page_goes_out_at_once_not_at_the_next_poll(
    aiohttp_client: ClientFactory, tmp_path: Path, clock: FakeClock, fakes: Fakes
) -> None:
    """The background ingester wakes the dispatcher: with an hour between polls, the page
    still leaves as soon as the notification is ingested."""
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    slow_polls = FAST | {"poll_interval": 3600}
    app = webhook_app(
        tmp_path, db_url, clock, destinations=fakes.destinations(), dispatch=slow_polls
    )
    client = await aiohttp_client(app)
    await asyncio.sleep(0.1)  # the dispatcher has looked once and sleeps for an hour
    response = await client.post("/api/v1/alerts", json=CONTRACT["firing"], headers=AUTH)
    assert response.status == 200
    await eventually(lambda: len(fakes.paged.alerts) == 2, seconds=5)


async def test_info_opens_one_zendesk_task(
    aiohttp_client: ClientFactory, tmp_path: Path, clock: FakeClock, fakes: Fakes
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    app = webhook_app(tmp_path, db_url, clock, destinations=fakes.destinations(), dispatch=FAST)
    client = await aiohttp_client(app)

    await post(client, load("new_customer_info.json"))
    await post(client, load("new_customer_info.json"))  # Alertmanager's repeat: no 2nd ticket
    await eventually(lambda: len(fakes.tickets("severity_info")) == 1)

    [ticket] = fakes.tickets("severity_info")
    assert (ticket["type"], ticket["priority"]) == ("task", "low")
    assert ticket["subject"] == "[info] NewCustomerSignup: NewCustomerSignup on api-1"
    assert ticket["due_at"] == "2026-11-28T12:00:00Z"  # received + the info SLA of 24 h
    [sent] = await deliveries_in(client, "sent", 1)
    assert sent["payload"]["ticket"]["due_at"] == ticket["due_at"]


async def test_a_revoked_slack_webhook_is_dead_lettered_and_listed(
    aiohttp_client: ClientFactory, tmp_path: Path, clock: FakeClock, fakes: Fakes
) -> None:
    destinations = fakes.destinations()
    revoked = str(fakes.slack.make_url("/services/T1/B1/revoked-secret"))
    destinations["slack"]["incidents"]["webhook_url"] = revoked
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    app = webhook_app(tmp_path, db_url, clock, destinations=destinations, dispatch=FAST)
    client = await aiohttp_client(app)

    await post(client, CONTRACT["firing"])
    dead = await deliveries_in(client, "dead", 2)

    assert [(d["target"], d["last_error"]) for d in dead] == [("slack", "HTTP 404: no_service")] * 2
    assert [d["last_status"] for d in dead] == [404, 404]  # what the last attempt got
    assert [code for _, _, code in fakes.inbox.rejected] == ["no_service"] * 2
    assert "revoked-secret" not in json.dumps(dead)


async def test_last_status_is_recorded_on_every_attempt(
    aiohttp_client: ClientFactory,
    aiohttp_server: ServerFactory,
    tmp_path: Path,
    state_db_url: str,
    clock: FakeClock,
    fakes: Fakes,
) -> None:
    faults = Faults(retry_after=0)
    faults.queue("503")
    inbox = slack_api.SlackInbox(webhooks={INCIDENTS, ALERTS}, per_second=100)
    flaky = await aiohttp_server(slack_api.make_app(faults, inbox=inbox))
    destinations = fakes.destinations()
    destinations["slack"]["incidents"]["webhook_url"] = str(
        flaky.make_url(f"/services/{INCIDENTS}")
    )
    app = webhook_app(tmp_path, state_db_url, clock, destinations=destinations, dispatch=FAST)
    client = await aiohttp_client(app)

    await post(client, load("tensafe_api_down.json"))
    await eventually(lambda: faults.requests == 1)
    for _ in range(250):  # the outcome is recorded a moment after the fake answered
        retried = await deliveries_in(client, "pending", 1)
        if retried[0]["attempts"] == 1:
            break
        await asyncio.sleep(0.02)
    assert [(d["target"], d["attempts"], d["last_status"]) for d in retried] == [("slack", 1, 503)]
    assert "503" in retried[0]["last_error"]
    sent = await deliveries_in(client, "sent", 1)
    assert [(d["target"], d["last_status"]) for d in sent] == [("pagerduty", 202)]


async def test_pending_deliveries_go_out_once_after_a_restart(
    aiohttp_client: ClientFactory, tmp_path: Path, state_db_url: str, clock: FakeClock, fakes: Fakes
) -> None:
    # First life: every destination unreachable; an attempt, if any, retries within 1 s, and
    # rows claimed but not sent when it stopped are free again once their lease (20 s) ends.
    unreachable = {"poll_interval": 3600, "backoff_base": 1, "backoff_cap": 1, "lease_seconds": 20}
    first = await aiohttp_client(webhook_app(tmp_path, state_db_url, clock, dispatch=unreachable))
    await post(first, CONTRACT["firing"])
    await first.close()
    assert fakes.paged.events == [] and fakes.inbox.messages == []
    clock.advance(seconds=21)

    second = await aiohttp_client(
        webhook_app(tmp_path, state_db_url, clock, destinations=fakes.destinations(), dispatch=FAST)
    )
    await eventually(lambda: len(fakes.paged.events) == 2 and len(fakes.inbox.messages) == 2)
    await asyncio.sleep(0.2)  # nothing further may arrive

    assert len(fakes.paged.events) == 2
    assert len(fakes.inbox.messages) == 2
    assert len(await deliveries_in(second, "sent", 4)) == 4
