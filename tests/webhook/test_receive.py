"""POST /api/v1/alerts end to end: durable accept, idempotency, routing into the outbox, errors."""

import asyncio
import base64
import contextlib
import json
import signal
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tensafe_ops.sandbox import pagerduty_events_api, slack_api
from tensafe_ops.sandbox.faults import Faults
from tests.conftest import FakeClock
from tests.contracts import alertmanager_examples
from tests.webhook.am import (
    API,
    AUTH,
    am_alert,
    config_file,
    ingest,
    ingested,
    load,
    notification,
    resolved,
    webhook_app,
    webhook_settings,
)
from webhook.handlers import WEBHOOK_KEY
from webhook.journal_sqlite import SqliteFileJournal

CONTRACT = alertmanager_examples()


async def start(
    aiohttp_client: Any, tmp_path: Path, db_url: str, clock: FakeClock, **cfg: Any
) -> TestClient:  # type: ignore[type-arg]
    client: TestClient = await aiohttp_client(webhook_app(tmp_path, db_url, clock, **cfg))  # type: ignore[type-arg]
    return client


async def post(
    client: TestClient,  # type: ignore[type-arg]
    body: Any,
    headers: dict[str, str] = AUTH,
    replicas: tuple[TestClient, ...] = (),  # type: ignore[type-arg]
    path: str = "/api/v1/alerts",
) -> tuple[int, Any]:
    """POST a notification; once it is accepted, ingest it and add what that caused."""
    response = await client.post(path, json=body, headers=headers)
    answer = await response.json()
    if response.status == 200:
        apps = [c.app for c in (client, *replicas)]
        for app in apps:
            await ingest(app)
        answer |= ingested(apps, answer["id"])
    return response.status, answer


async def alerts(client: TestClient, **query: str) -> list[dict[str, Any]]:  # type: ignore[type-arg]
    response = await client.get("/api/v1/alerts", params=query, headers=API)
    assert response.status == 200
    found: list[dict[str, Any]] = (await response.json())["alerts"]
    return found


async def deliveries(client: TestClient, **query: str) -> list[dict[str, Any]]:  # type: ignore[type-arg]
    response = await client.get("/api/v1/deliveries", params=query, headers=API)
    assert response.status == 200
    found: list[dict[str, Any]] = (await response.json())["deliveries"]
    return sorted(found, key=lambda d: d["id"])


async def test_firing_is_stored_with_its_pages(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    status, body = await post(client, CONTRACT["firing"])
    assert status == 200
    assert body == {
        "status": "accepted",
        "alerts": 2,
        "id": 1,
        "new": 2,
        "resolved": 0,
        "duplicates": 0,
        "deliveries": 4,
    }

    stored = await alerts(client)
    assert {a["fingerprint"] for a in stored} == {"fba373d579d3b6aa", "74700be6de0537b8"}
    for alert in stored:
        assert alert["state"] == "firing" and alert["severity"] == "critical"
        assert alert["respond_by"] == "2026-11-27T12:15:00Z"  # first received 12:00 + 15 min
        assert alert["seconds_left"] == 900.0 and alert["overdue_seconds"] is None
        assert alert["routes"] == ["critical"]

    sent = await deliveries(client)
    assert sorted((d["target"], d["destination"], d["kind"]) for d in sent) == [
        ("pagerduty", "default", "trigger"),
        ("pagerduty", "default", "trigger"),
        ("slack", "incidents", "message"),
        ("slack", "incidents", "message"),
    ]
    page = next(d for d in sent if d["target"] == "pagerduty")["payload"]
    assert page["event_action"] == "trigger"
    assert page["dedup_key"] in {
        "tensafe:fba373d579d3b6aa:2026-08-20T10:15:30.123000Z",
        "tensafe:74700be6de0537b8:2026-08-20T10:16:00.500000Z",
    }
    assert page["payload"]["severity"] == "critical"
    assert "routing_key" not in page  # never stored with the key, never shown
    # Nothing was sent (the destinations are a closed port); the ingester wakes the dispatcher at
    # once, so a Slack message may be caught mid-attempt, recorded as sending under its claim.
    assert all(d["state"] in {"pending", "sending"} for d in sent)
    assert all(d["state"] == "pending" for d in sent if d["target"] == "pagerduty")


async def test_ha_duplicates_create_no_second_record_or_page(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    first, second = await asyncio.gather(
        post(client, CONTRACT["firing"]), post(client, CONTRACT["firing"])
    )
    assert first[0] == second[0] == 200
    assert first[1]["new"] + second[1]["new"] == 2
    assert first[1]["duplicates"] + second[1]["duplicates"] == 2
    clock.advance(hours=4)  # Alertmanager's repeat interval: same key, still a duplicate
    status, body = await post(client, CONTRACT["firing"])
    assert (status, body["new"], body["duplicates"]) == (200, 0, 2)
    assert len(await alerts(client)) == 2
    assert len(await deliveries(client)) == 4
    metrics = await (await client.get("/metrics")).text()
    assert "tensafe_webhook_duplicate_notifications_ignored_total 4.0" in metrics
    assert (
        'tensafe_webhook_alerts_received_total{severity="critical",status="firing"} 6.0' in metrics
    )


async def test_resolve_sends_pagerduty_resolve_and_slack_follow_up(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    await post(client, CONTRACT["firing"])
    clock.advance(minutes=10)
    status, body = await post(client, CONTRACT["resolved"])
    assert (status, body["resolved"], body["deliveries"]) == (200, 2, 4)
    assert (await post(client, CONTRACT["resolved"]))[1]["duplicates"] == 2
    stored = await alerts(client)
    assert {a["state"] for a in stored} == {"resolved"}
    assert not any(a["breached"] for a in stored)  # resolved within 15 min answers the SLA
    resolves = [d for d in await deliveries(client) if d["kind"] == "resolve"]
    assert sorted(d["target"] for d in resolves) == ["pagerduty", "pagerduty", "slack", "slack"]
    pd = [d["payload"] for d in resolves if d["target"] == "pagerduty"]
    assert {p["dedup_key"] for p in pd} == {  # the keys their pages were triggered with
        "tensafe:fba373d579d3b6aa:2026-08-20T10:15:30.123000Z",
        "tensafe:74700be6de0537b8:2026-08-20T10:16:00.500000Z",
    }
    assert all(p["event_action"] == "resolve" for p in pd)


async def test_resolved_before_firing_pages_nobody(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    status, body = await post(client, CONTRACT["resolved"])
    assert (status, body["new"], body["deliveries"]) == (200, 0, 0)
    status, body = await post(client, CONTRACT["firing"])  # the late firing of the same alerts
    assert (status, body["new"], body["deliveries"]) == (200, 0, 0)
    stored = await alerts(client)
    assert len(stored) == 2 and {a["state"] for a in stored} == {"resolved"}
    assert await deliveries(client) == []


async def test_mixed_truncated_group(aiohttp_client, tmp_path, state_db_url, clock) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    status, body = await post(client, CONTRACT["mixed_truncated"])
    assert (status, body["alerts"], body["new"]) == (200, 2, 1)
    firing = await alerts(client, state="firing")
    assert [a["fingerprint"] for a in firing] == ["14f703de24b34173"]
    assert firing[0]["severity"] == "warning" and firing[0]["respond_by"] == "2026-11-27T13:00:00Z"
    sent = await deliveries(client)
    assert [(d["target"], d["destination"]) for d in sent] == [("slack", "alerts")]


async def test_severity_default_and_overrides_route(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(
        aiohttp_client,
        tmp_path,
        state_db_url,
        clock,
        severity_overrides={"NewCustomerSignup": "info"},
    )
    assert (await post(client, load("unknown_severity_am_0_31.json")))[0] == 200
    signup = am_alert("NewCustomerSignup", "critical", account="acct_00042")
    assert (await post(client, notification(signup)))[0] == 200
    by_name = {a["alertname"]: a for a in await alerts(client)}
    assert by_name["HighTraining"]["severity"] == "warning"  # unknown "page-me-now" -> default
    assert by_name["NewCustomerSignup"]["severity"] == "info"  # the override beats the label
    assert by_name["NewCustomerSignup"]["respond_by"] == "2026-11-28T12:00:00Z"
    sent = {(d["target"], d["destination"]): d for d in await deliveries(client)}
    assert set(sent) == {("slack", "alerts"), ("zendesk", "default")}
    ticket = sent[("zendesk", "default")]["payload"]["ticket"]
    assert ticket["type"] == "task" and ticket["due_at"] == "2026-11-28T12:00:00Z"


async def test_route_sla_and_continue(aiohttp_client, tmp_path, state_db_url, clock) -> None:  # type: ignore[no-untyped-def]
    routes = [
        {
            "name": "disks",
            "matchers": ['alertname=~"Disk.*"'],
            "targets": ["slack:alerts"],
            "sla": 600,
            "continue": True,
        },
        {"name": "warning", "matchers": ['severity="warning"'], "targets": ["zendesk:default"]},
    ]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock, routes=routes)
    status, body = await post(client, load("disk_space_truncated.json"))
    assert (status, body["new"], body["deliveries"]) == (200, 3, 6)
    for alert in await alerts(client):
        assert alert["routes"] == ["disks", "warning"]
        assert alert["respond_by"] == "2026-11-27T12:10:00Z"


async def test_bad_requests_get_4xx_naming_the_problem(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock, body_limit_bytes=4096)
    good = load("tensafe_api_down.json")
    assert (await post(client, good, headers={}))[0] == 401
    assert (await post(client, good, headers={"Authorization": "Bearer wrong"}))[0] == 401
    assert (await post(client, good, headers={"Authorization": "Basic Zm9vOmJhcg=="}))[0] == 401

    response = await client.post("/api/v1/alerts", data=b"{not json", headers=AUTH)
    assert response.status == 400
    assert (await response.json())["field"] == "<body>"
    missing = {k: v for k, v in good.items() if k != "groupKey"}
    status, body = await post(client, missing)
    assert (status, body["field"]) == (400, "groupKey")
    bad_time = {**good, "alerts": [{**good["alerts"][0], "startsAt": "yesterday"}]}
    status, body = await post(client, bad_time)
    assert (status, body["field"]) == (400, "alerts.0.startsAt")
    bad_fp = {**good, "alerts": [{**good["alerts"][0], "fingerprint": "XYZ"}]}
    assert (await post(client, bad_fp))[1]["field"] == "alerts.0.fingerprint"

    huge = {**good, "commonAnnotations": {"description": "x" * 5000}}
    status, body = await post(client, huge)
    assert status == 413
    assert await alerts(client) == []  # nothing stored from any of these
    metrics = await (await client.get("/metrics")).text()
    assert 'tensafe_webhook_rejected_requests_total{reason="unauthorized"} 3.0' in metrics
    assert 'tensafe_webhook_rejected_requests_total{reason="bad_request"} 4.0' in metrics
    assert 'tensafe_webhook_rejected_requests_total{reason="too_large"} 1.0' in metrics


async def test_basic_auth_receiver_and_explicit_none(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    receivers = {
        "/api/v1/alerts": {"auth": {"basic": {"username": "am", "password": "s3cret"}}},
        "/api/v1/alerts/open": {"auth": "none"},
    }
    client = await start(aiohttp_client, tmp_path, state_db_url, clock, receivers=receivers)
    good = load("tensafe_api_down.json")
    ok = "Basic " + base64.b64encode(b"am:s3cret").decode()
    wrong = "Basic " + base64.b64encode(b"am:nope").decode()
    assert (await post(client, good, headers={"Authorization": wrong}))[0] == 401
    assert (await post(client, good, headers={"Authorization": ok}))[0] == 200
    status, body = await post(client, good, headers={}, path="/api/v1/alerts/open")
    assert (status, body["duplicates"]) == (200, 1)


async def test_store_unavailable_answers_503(aiohttp_client, tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "state.db"
    client = await start(aiohttp_client, tmp_path, f"sqlite+aiosqlite:///{db}", clock)
    journal = client.app[WEBHOOK_KEY].journal
    assert isinstance(journal, SqliteFileJournal)
    assert (await post(client, load("tensafe_api_down.json")))[0] == 200
    good = journal.path
    journal.path = tmp_path / "gone"
    await asyncio.to_thread(journal.path.mkdir)  # a path that is no database: opening fails
    await journal._run(journal._close)  # as if the connection were lost
    response = await client.post(
        "/api/v1/alerts", json=load("new_customer_info.json"), headers=AUTH
    )
    assert response.status == 503 and "retry" in (await response.json())["error"]
    journal.path = good  # back: the next notification reopens the journal and is stored
    assert (await post(client, load("new_customer_info.json")))[0] == 200


async def test_a_cancelled_request_still_finishes_its_write(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    webhook = client.app[WEBHOOK_KEY]
    body = json.dumps(load("tensafe_api_down.json"))
    gate = asyncio.Event()

    async def slow_accept() -> object:
        await gate.wait()
        return await webhook.journal.append(body, clock())

    handler = asyncio.create_task(webhook.shielded(slow_accept()))
    await asyncio.sleep(0)
    handler.cancel()  # what aiohttp does when Alertmanager hangs up
    gate.set()
    await asyncio.gather(*webhook.writes)
    assert handler.cancelled()
    await ingest(client.app)
    assert [a["alertname"] for a in await alerts(client)] == ["TenSafeAPIDown"]


async def test_two_replicas_share_one_postgres(aiohttp_client, tmp_path, pg_url, clock) -> None:  # type: ignore[no-untyped-def]
    one = await start(aiohttp_client, tmp_path / "a", pg_url, clock)
    two = await start(aiohttp_client, tmp_path / "b", pg_url, clock)
    payload = load("tensafe_api_down.json")
    results = await asyncio.gather(
        *(post(c, payload, replicas=(one, two)) for c in (one, two, one, two))
    )
    assert [r[0] for r in results] == [200] * 4
    assert sum(r[1]["new"] for r in results) == 1
    assert sum(r[1]["deliveries"] for r in results) == 2
    for client in (one, two):
        assert len(await alerts(client)) == 1
        sent = await deliveries(client)
        assert sorted(d["target"] for d in sent) == ["pagerduty", "slack"]
    later = resolved(payload["alerts"][0], datetime(2026, 11, 27, 12, 5, tzinfo=UTC))
    results = await asyncio.gather(
        *(post(c, notification(later), replicas=(one, two)) for c in (one, two))
    )
    assert sum(r[1]["resolved"] for r in results) == 1
    assert sorted(d["kind"] for d in await deliveries(one)) == [
        "message",
        "resolve",
        "resolve",
        "trigger",
    ]


async def wait_for(condition: Any, clock: FakeClock, seconds: float = 10.0) -> None:
    """Poll `condition`, letting the fake clock move so retries (Retry-After) come due."""
    async with asyncio.timeout(seconds):
        while not await condition():
            await asyncio.sleep(0.05)
            clock.advance(seconds=0.5)


async def test_pages_reach_the_fakes_once_and_resolve(
    state_db_url, aiohttp_client, aiohttp_server, tmp_path, clock
) -> None:  # type: ignore[no-untyped-def]
    routing_key = "R0UT1NGKEY0000000000000000000001"
    slack_fake = await aiohttp_server(
        slack_api.make_app(Faults(), inbox=slack_api.SlackInbox(webhooks={"T1/B1/x", "T1/B2/y"}))
    )
    pd_fake = await aiohttp_server(
        pagerduty_events_api.make_app(Faults(), routing_keys={routing_key})
    )
    slack_url, pd_url = str(slack_fake.make_url("/services")), str(pd_fake.make_url("/v2/enqueue"))
    destinations = {
        "pagerduty": {"default": {"routing_key": routing_key, "events_url": pd_url}},
        "slack": {
            "incidents": {"webhook_url": f"{slack_url}/T1/B1/x"},
            "alerts": {"webhook_url": f"{slack_url}/T1/B2/y"},
        },
    }
    routes = [
        {
            "name": "critical",
            "matchers": ['severity="critical"'],
            "targets": ["pagerduty:default", "slack:incidents"],
        }
    ]
    client = await start(
        aiohttp_client,
        tmp_path,
        state_db_url,
        clock,
        destinations=destinations,
        routes=routes,
        dispatch={"poll_interval": 0.05},
    )
    inbox = slack_fake.app[slack_api.SLACK_INBOX_KEY]
    events = pd_fake.app[pagerduty_events_api.EVENTS_STATE_KEY]
    payload = load("tensafe_api_down.json")
    key = f"tensafe:{payload['alerts'][0]['fingerprint']}:{payload['alerts'][0]['startsAt']}"
    for _ in range(3):  # an HA pair plus a retry: still one page, one message
        assert (await post(client, payload))[0] == 200

    async def first_sent() -> bool:
        return len(inbox.messages) == 1 and len(events.events) == 1

    await wait_for(first_sent, clock)
    page = events.alert(key)
    assert page is not None and page.status == "triggered" and page.severity == "critical"
    message = json.dumps(inbox.messages[0].payload)
    assert "TenSafe API down on api-eu-1:8443" in message and "Fail traffic over" in message
    assert inbox.messages[0].webhook == "T1/B1/x"

    clock.advance(minutes=7)
    later = resolved(payload["alerts"][0], clock())
    assert (await post(client, notification(later)))[0] == 200

    async def all_sent() -> bool:
        states = [d["state"] for d in await deliveries(client)]
        return len(events.events) == 2 and len(inbox.messages) == 2 and states == ["sent"] * 4

    await wait_for(all_sent, clock)
    assert events.alert(key).status == "resolved"  # type: ignore[union-attr]
    assert "RESOLVED" in inbox.messages[1].payload["text"]
    assert events.rejected == 0
    assert [code for _, _, code in inbox.rejected] in ([], ["rate_limited"])  # 1 msg/s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def serve(config: Path, port: int) -> asyncio.subprocess.Process:
    """The real CLI in its own process, ready when /healthz answers."""
    cli = Path(sys.executable).parent / "tensafe-ops"
    process = await asyncio.create_subprocess_exec(
        str(cli),
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with aiohttp.ClientSession() as session, asyncio.timeout(20):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return process
            await asyncio.sleep(0.1)


async def test_sigkill_mid_storm_loses_no_accepted_alert_and_pages_once(
    aiohttp_server, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    routing_key = "R0UT1NGKEY0000000000000000000009"
    pd_fake = await aiohttp_server(
        pagerduty_events_api.make_app(Faults(), routing_keys={routing_key})
    )
    events = pd_fake.app[pagerduty_events_api.EVENTS_STATE_KEY]
    port = free_port()
    config = tmp_path / "config.yaml"
    settings = webhook_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    settings["server"]["log_format"] = "console"
    settings["webhook"].update(
        destinations={
            "pagerduty": {
                "default": {
                    "routing_key": routing_key,
                    "events_url": str(pd_fake.make_url("/v2/enqueue")),
                    "rate_per_minute": 6000,
                }
            }
        },
        routes=[
            {"name": "pages", "matchers": ['severity="critical"'], "targets": ["pagerduty:default"]}
        ],
        dispatch={"poll_interval": 0.05, "lease_seconds": 3, "request_timeout": 1},
    )
    text, secrets = config_file(settings)
    config.write_text(text)
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)  # the CLI process inherits them
    storm = [
        notification(*(am_alert("TenSafeAPIDown", instance=f"api-{n}-{i}:8443") for i in range(10)))
        for n in range(10)
    ]
    accepted: list[dict[str, Any]] = []
    first_accepted = asyncio.Event()
    url = f"http://127.0.0.1:{port}/api/v1/alerts"
    api = f"http://127.0.0.1:{port}/api/v1"

    async def send(session: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.post(url, json=body, headers=AUTH) as response:
                if response.status == 200:
                    accepted.append(body)
                    first_accepted.set()

    async def stored_fingerprints(session: aiohttp.ClientSession) -> set[str]:
        async with session.get(f"{api}/alerts?limit=1000", headers=API) as response:
            return {a["fingerprint"] for a in (await response.json())["alerts"]}

    process = await serve(config, port)
    async with aiohttp.ClientSession() as session:
        sending = [asyncio.create_task(send(session, body)) for body in storm]
        await asyncio.wait_for(first_accepted.wait(), 20)
        process.send_signal(signal.SIGKILL)  # mid-storm: other requests are still in flight
        await process.wait()
        await asyncio.gather(*sending)
    acked_before_kill = {a["fingerprint"] for body in accepted for a in body["alerts"]}
    assert acked_before_kill

    process = await serve(config, port)  # restart on the same state
    try:
        async with aiohttp.ClientSession() as session:
            async with asyncio.timeout(20):  # the journal is ingested after the restart
                while True:
                    if acked_before_kill <= await stored_fingerprints(session):  # none lost
                        break
                    await asyncio.sleep(0.1)
            await asyncio.gather(*(send(session, body) for body in storm))  # Alertmanager retries
            every = {a["fingerprint"] for body in storm for a in body["alerts"]}
            async with asyncio.timeout(20):
                while True:
                    async with session.get(f"{api}/deliveries?state=pending", headers=API) as r:
                        pending = (await r.json())["deliveries"]
                    stored = await stored_fingerprints(session)
                    if not pending and stored == every:
                        break
                    await asyncio.sleep(0.1)
            async with session.get(f"{api}/deliveries?state=sent&limit=1000", headers=API) as r:
                sent = (await r.json())["deliveries"]
    finally:
        process.terminate()
        await process.wait()
    assert len(sent) == 100  # one page per alert, all sent
    starts = {a["fingerprint"]: a["startsAt"] for body in storm for a in body["alerts"]}
    for fingerprint in every:
        page = events.alert(f"tensafe:{fingerprint}:{starts[fingerprint]}")
        assert page is not None and page.openings == 1  # sent once (a re-send is deduplicated)


async def test_slow_store_answers_503_and_the_retry_is_idempotent(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock, store_timeout=0.0001)
    payload = load("tensafe_api_down.json")
    status, body = await post(client, payload)
    assert status == 503 and "retry" in body["error"]  # too slow: Alertmanager will retry
    webhook = client.app[WEBHOOK_KEY]
    webhook.cfg = webhook.cfg.model_copy(update={"store_timeout": 10})
    webhook.journal.timeout = 10
    await webhook.journal.flush()  # its commit had begun: the write itself was not abandoned
    status, body = await post(client, payload)  # the retry
    assert (status, body["new"], body["duplicates"]) == (200, 0, 1)
    assert len(await deliveries(client)) == 2
