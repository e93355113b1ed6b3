"""Two replicas on one PostgreSQL database: together they keep each vendor's rate limit (one
replica sends to a destination at a time), and when the one sending dies, the other takes its
destinations and the deliveries it had claimed over at once, not when their leases run out."""

import contextlib
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import webhook
from tensafe_ops.sandbox import pagerduty_events_api, slack_api
from tensafe_ops.sandbox.faults import Faults
from tests.conftest import FakeClock
from tests.webhook.am import (
    API,
    AUTH,
    am_alert,
    config_file,
    notification,
    until,
    webhook_app,
    webhook_settings,
)
from tests.webhook.test_receive import free_port, serve
from webhook.owners import LocalOwners

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
ALERTS_WEBHOOK = "T1/B2/alerts-secret"
ROUTING_KEY = "R0UT1NGKEY0000000000000000000014"


async def post_warnings(clients: list[TestClient[Any, Any]], count: int) -> None:
    """`count` new warning alerts (each a Slack #alerts message), one notification each,
    to the replicas in turn: both ingest, both would send."""
    for n in range(count):
        body = notification(am_alert("DiskFilling", "warning", instance=f"db-{n}:9100"))
        response = await clients[n % len(clients)].post("/api/v1/alerts", json=body, headers=AUTH)
        assert response.status == 200


async def sent(client: TestClient[Any, Any]) -> int:
    response = await client.get(
        "/api/v1/deliveries", params={"state": "sent", "limit": 1000}, headers=API
    )
    return len((await response.json())["deliveries"])


async def two_replicas_sending(
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    pg_url: str,
    clock: FakeClock,
    count: int,
) -> tuple[slack_api.SlackInbox, list[TestClient[Any, Any]]]:
    """Two replicas pacing Slack #alerts at 3 messages/s each, against a Slack fake that
    answers 429 beyond 5 per second: alone, each keeps well under it; both sending at once
    would not."""
    inbox = slack_api.SlackInbox(webhooks={ALERTS_WEBHOOK, "T1/B1/x"}, per_second=5)
    slack = await aiohttp_server(slack_api.make_app(Faults(), inbox=inbox))
    destinations = webhook_settings(tmp_path, pg_url)["webhook"]["destinations"]
    destinations["slack"]["alerts"] = {
        "webhook_url": str(slack.make_url(f"/services/{ALERTS_WEBHOOK}")),
        "rate_per_second": 3,
    }
    # Small claims, so that both replicas hold some of the messages at any time (one claim of
    # the default 20 could take them all, and the control below would see no overlap).
    dispatch = {"poll_interval": 0.1, "lease_seconds": 60, "request_timeout": 5, "batch_size": 2}
    clients = [
        await aiohttp_client(
            webhook_app(tmp_path, pg_url, clock, destinations=destinations, dispatch=dispatch)
        )
        for _ in range(2)
    ]
    await post_warnings(clients, count)
    return inbox, clients


async def test_two_replicas_keep_a_destinations_rate_limit_together(
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    pg_url: str,
    clock: FakeClock,
) -> None:
    inbox, clients = await two_replicas_sending(
        aiohttp_server, aiohttp_client, tmp_path, pg_url, clock, count=24
    )

    async def all_sent() -> bool:
        return await sent(clients[0]) == 24

    await until(all_sent, 60)
    assert inbox.rejected == []  # not one 429
    texts = [m.payload["text"] for m in inbox.messages]
    assert len(texts) == len(set(texts)) == 24  # each once
    owners = [c.app[webhook.DISPATCHER_KEY].owners.owned() for c in clients]
    assert sorted(len(o) for o in owners) == [0, 1]  # one replica sends to #alerts
    metrics = [await (await c.get("/metrics")).text() for c in clients]
    owned = 'tensafe_webhook_destination_owned{destination="alerts",target="slack"} 1.0'
    assert sum(owned in text for text in metrics) == 1


async def test_control_each_replica_pacing_alone_gets_throttled(
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    pg_url: str,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same two replicas, each believing every destination is its own (as before this
    shared budget): together they exceed the limit, so the test above can fail."""
    monkeypatch.setattr(webhook, "open_owners", lambda *_: LocalOwners())
    inbox, _ = await two_replicas_sending(
        aiohttp_server, aiohttp_client, tmp_path, pg_url, clock, count=24
    )

    async def throttled() -> bool:
        return any(status == 429 for _, status, _ in inbox.rejected)

    await until(throttled, 30)


async def pages_of(events: pagerduty_events_api.EventsState) -> set[str]:
    return {key for (_, key), alert in events.alerts.items() if alert.triggers}


async def test_a_killed_replicas_claimed_deliveries_are_taken_over_at_once(
    aiohttp_server: ServerFactory, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `tensafe-ops serve` processes. The one sending the pages is SIGKILLed while it
    holds claimed deliveries whose lease has ten minutes left: the other sends them within
    seconds (the test allows 30, the issue's bound), each page once per alert."""
    fake = await aiohttp_server(
        pagerduty_events_api.make_app(Faults(), routing_keys={ROUTING_KEY}, per_minute=None)
    )
    events = fake.app[pagerduty_events_api.EVENTS_STATE_KEY]
    settings = webhook_settings(tmp_path, pg_url)
    settings["server"]["log_format"] = "console"
    settings["webhook"]["destinations"]["pagerduty"]["default"] = {
        "routing_key": ROUTING_KEY,
        "events_url": str(fake.make_url("/v2/enqueue")),
        "rate_per_minute": 300,  # 5 pages/s: a claimed batch takes seconds to send
    }
    settings["webhook"]["routes"] = [
        {"name": "pages", "matchers": ['severity="critical"'], "targets": ["pagerduty:default"]}
    ]
    settings["webhook"]["dispatch"] = {
        "poll_interval": 0.2,
        "lease_seconds": 600,  # a lease running out cannot be what rescues them
        "request_timeout": 5,
        "batch_size": 20,
    }
    text, secrets = config_file(settings)
    config = tmp_path / "config.yaml"
    config.write_text(text)
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    ports = [free_port(), free_port()]
    processes = [await serve(config, port) for port in ports]
    try:
        async with aiohttp.ClientSession() as session:
            # One group of 20: ingested together, claimed together by whoever sends pages.
            group = [am_alert("TenSafeAPIDown", instance=f"api-{n}:8443") for n in range(20)]
            url = f"http://127.0.0.1:{ports[0]}/api/v1/alerts"
            async with session.post(url, json=notification(*group), headers=AUTH) as response:
                assert response.status == 200

            async def some_paged() -> bool:
                return len(await pages_of(events)) >= 2

            await until(some_paged, 20, every=0.01)
            owner = await owner_of(session, ports, "pagerduty", "default")
            processes[owner].send_signal(signal.SIGKILL)
            await processes[owner].wait()
            paged_at_kill = len(await pages_of(events))
            assert paged_at_kill < 20  # it died holding claimed, unsent pages

            async def all_paged() -> bool:
                return len(await pages_of(events)) == 20

            await until(all_paged, 30)
            survivor = ports[1 - owner]
            assert await owner_of(session, [survivor], "pagerduty", "default") == 0
            pending = await get_json(session, survivor, "/api/v1/deliveries?state=pending")
            assert pending["deliveries"] == []
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            await process.wait()
    assert all(alert.openings == 1 for alert in events.alerts.values())  # one page per alert
    assert events.throttled == 0


async def get_json(session: aiohttp.ClientSession, port: int, path: str) -> Any:
    async with session.get(f"http://127.0.0.1:{port}{path}", headers=API) as response:
        return await response.json()


async def owner_of(
    session: aiohttp.ClientSession, ports: list[int], target: str, destination: str
) -> int:
    """Which of the replicas (an index into `ports`) sends to the destination."""
    line = f'tensafe_webhook_destination_owned{{destination="{destination}",target="{target}"}} 1.0'
    for index, port in enumerate(ports):
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            if line in await response.text():
                return index
    raise AssertionError(f"no replica owns {target}:{destination}")


async def test_a_slack_message_under_way_when_the_process_dies_is_not_sent_twice(
    aiohttp_server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL while Slack and PagerDuty each hold one of our requests unanswered. After the
    restart the page is sent again (PagerDuty deduplicates it), while the Slack message,
    recorded as `sending` before its request, is dead-lettered as outcome unknown rather than
    posted a second time; an operator can retry it."""
    slack_faults, pd_faults = Faults(timeout_seconds=5), Faults(timeout_seconds=5)
    slack_faults.queue("timeout")
    pd_faults.queue("timeout")
    inbox = slack_api.SlackInbox(webhooks={"T1/B1/incidents-secret"}, per_second=100)
    slack = await aiohttp_server(slack_api.make_app(slack_faults, inbox=inbox))
    pd = await aiohttp_server(
        pagerduty_events_api.make_app(pd_faults, routing_keys={ROUTING_KEY}, per_minute=None)
    )
    events = pd.app[pagerduty_events_api.EVENTS_STATE_KEY]
    settings = webhook_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    settings["server"]["log_format"] = "console"
    destinations = settings["webhook"]["destinations"]
    destinations["slack"]["incidents"] = {
        "webhook_url": str(slack.make_url("/services/T1/B1/incidents-secret"))
    }
    destinations["pagerduty"]["default"] = {
        "routing_key": ROUTING_KEY,
        "events_url": str(pd.make_url("/v2/enqueue")),
    }
    settings["webhook"]["dispatch"] = {
        "poll_interval": 0.1,
        "lease_seconds": 2,
        "request_timeout": 1,
        "backoff_base": 0.1,
    }
    settings["webhook"]["sweep_interval"] = 0.2
    text, secrets = config_file(settings)
    config = tmp_path / "config.yaml"
    config.write_text(text)
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    process = await serve(config, port)
    try:
        async with aiohttp.ClientSession() as session:
            body = notification(am_alert("TenSafeAPIDown", instance="api-1:8443"))
            url = f"http://127.0.0.1:{port}/api/v1/alerts"
            async with session.post(url, json=body, headers=AUTH) as response:
                assert response.status == 200

            async def both_waiting() -> bool:
                return slack_faults.requests == 1 and pd_faults.requests == 1

            await until(both_waiting, 20, every=0.005)
            process.send_signal(signal.SIGKILL)  # mid-request, well before the 1 s timeout
            await process.wait()

            process = await serve(config, port)

            async def settled() -> bool:
                dead = await get_json(session, port, "/api/v1/deliveries?state=dead")
                return len(events.events) == 1 and len(dead["deliveries"]) == 1

            await until(settled, 20)
            [dead] = (await get_json(session, port, "/api/v1/deliveries?state=dead"))["deliveries"]
            assert dead["target"] == "slack"
            assert dead["last_error"].startswith("outcome unknown")
            assert slack_faults.requests == 1  # not posted a second time
            assert pd_faults.requests == 2  # the page went again: PagerDuty deduplicates
            [page] = events.alerts.values()
            assert page.openings == 1

            # The operator checks #incidents, sees it missing and retries it.
            retry = f"http://127.0.0.1:{port}/api/v1/deliveries/{dead['id']}/retry"
            async with session.post(retry, headers=API) as response:
                assert response.status == 200

            async def posted() -> bool:
                return len(inbox.messages) == 1

            await until(posted, 20)
    finally:
        process.terminate()
        await process.wait()
