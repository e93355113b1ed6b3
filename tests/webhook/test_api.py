"""The management API: acknowledgements (API and PagerDuty webhooks v3), SLA position,
maintenance windows, dead letters, and the metrics they feed."""

import json
from typing import Any

from tests.webhook.am import (
    API,
    am_alert,
    load,
    metric,
    notification,
    only_alert,
    pd_event,
    receive,
    signed,
    start,
)
from webhook import DISPATCHER_KEY, sweep_once
from webhook.handlers import WEBHOOK_KEY


async def test_ack_via_api_records_who_and_time_to_ack(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    await receive(client, load("tensafe_api_down.json"))
    alert = await only_alert(client)
    url = f"/api/v1/alerts/{alert['id']}/ack"
    assert (await client.post(url, json={"by": "dana"})).status == 401  # API auth applies
    assert (await client.post(url, json={"note": "x"}, headers=API)).status == 400
    clock.advance(minutes=4)
    response = await client.post(url, json={"by": "dana", "note": "failing over"}, headers=API)
    assert response.status == 200
    acked = await response.json()
    assert acked["acknowledged_by"] == "dana" and acked["ack_note"] == "failing over"
    assert acked["acknowledged_at"] == "2026-11-27T12:04:00Z"
    assert acked["seconds_left"] is None and acked["breached"] is False
    again = await client.post(url, json={"by": "eve"}, headers=API)
    assert again.status == 409 and "dana" in (await again.json())["error"]
    assert (
        await client.post("/api/v1/alerts/999/ack", json={"by": "x"}, headers=API)
    ).status == 404

    await sweep_once(client.app[WEBHOOK_KEY])
    name = "tensafe_webhook_time_to_acknowledge_seconds"
    assert await metric(client, f"{name}_bucket", severity="critical", le="300.0") == 1.0
    assert await metric(client, f"{name}_bucket", severity="critical", le="60.0") == 0.0
    assert await metric(client, f"{name}_sum", severity="critical") == 240.0
    assert (
        await metric(
            client, "tensafe_webhook_open_alerts", severity="critical", acknowledged="true"
        )
        == 1.0
    )
    assert await metric(client, "tensafe_webhook_sla_breaches_total", severity="critical") == 0.0


async def test_overdue_alert_breaches_once(aiohttp_client, tmp_path, state_db_url, clock) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    await receive(client, load("tensafe_api_down.json"))
    clock.advance(minutes=20)
    alert = await only_alert(client)
    assert alert["seconds_left"] is None and alert["overdue_seconds"] == 300.0
    webhook = client.app[WEBHOOK_KEY]
    await sweep_once(webhook)
    await sweep_once(webhook)  # counted once, however often the sweep runs
    assert await metric(client, "tensafe_webhook_sla_breaches_total", severity="critical") == 1.0
    assert await metric(client, "tensafe_webhook_alerts_overdue", severity="critical") == 1.0
    response = await client.post(
        f"/api/v1/alerts/{alert['id']}/ack", json={"by": "late"}, headers=API
    )
    assert (await response.json())["breached"] is True
    await sweep_once(webhook)
    assert await metric(client, "tensafe_webhook_sla_breaches_total", severity="critical") == 1.0
    assert await metric(client, "tensafe_webhook_alerts_overdue", severity="critical") == 0.0
    listed = await client.get(
        "/api/v1/alerts", params={"severity": "critical", "state": "firing"}, headers=API
    )
    assert len((await listed.json())["alerts"]) == 1
    none = await client.get("/api/v1/alerts", params={"severity": "info"}, headers=API)
    assert (await none.json())["alerts"] == []
    bad = await client.get("/api/v1/alerts", params={"state": "open"}, headers=API)
    assert bad.status == 400 and (await bad.json())["field"] == "state"


async def test_pagerduty_webhook_acknowledges_by_incident_key(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    payload = load("tensafe_api_down.json")
    await receive(client, payload)
    first = payload["alerts"][0]
    key = f"tensafe:{first['fingerprint']}:{first['startsAt']}"  # the occurrence's own key
    clock.advance(minutes=3)
    body = pd_event("incident.acknowledged", key, "2026-11-27T12:02:30Z")
    url = "/api/v1/pagerduty/webhook"

    assert (await client.post(url, data=body)).status == 401
    wrong = {"X-PagerDuty-Signature": signed(body, "other-secret"), "X-Webhook-Id": "w1"}
    assert (await client.post(url, data=body, headers=wrong)).status == 401
    tampered = {"X-PagerDuty-Signature": signed(body), "X-Webhook-Id": "w1"}
    assert (await client.post(url, data=body + b" ", headers=tampered)).status == 401
    # During a secret rotation PagerDuty sends several signatures; any valid one will do.
    headers = {"X-PagerDuty-Signature": f"v1=deadbeef,{signed(body)}", "X-Webhook-Id": "w1"}
    response = await client.post(url, data=body, headers=headers)
    assert response.status == 200 and (await response.json())["status"] == "acknowledged"
    again = await client.post(url, data=body, headers=headers)
    assert (await again.json())["status"] == "duplicate"

    alert = await only_alert(client)
    assert alert["acknowledged_by"] == "Tenley Safe" and alert["acknowledged_via"] == "pagerduty"
    assert alert["acknowledged_at"] == "2026-11-27T12:02:30Z"
    unknown = pd_event("incident.resolved", "tensafe:0000000000000000", "2026-11-27T12:03:00Z")
    headers = {"X-PagerDuty-Signature": signed(unknown), "X-Webhook-Id": "w2"}
    assert (await (await client.post(url, data=unknown, headers=headers)).json())[
        "status"
    ] == "unknown_incident"
    bad = b'{"event": {"event_type": 7}}'
    response = await client.post(url, data=bad, headers={"X-PagerDuty-Signature": signed(bad)})
    assert response.status == 400 and (await response.json())["field"] == "event.event_type"
    assert (
        await metric(client, "tensafe_webhook_pagerduty_webhooks_total", outcome="duplicate") == 1.0
    )


async def test_maintenance_downgrades_pages_to_a_slack_note(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    window = {
        "start": "2026-11-27T11:30:00Z",
        "end": "2026-11-27T13:00:00Z",
        "matchers": ['cluster="prod-eu-1"'],
        "reason": "EU database failover drill",
        "by": "dana",
    }
    bad = await client.post(
        "/api/v1/maintenance", json={**window, "matchers": ["cluster=~("]}, headers=API
    )
    assert bad.status == 400 and (await bad.json())["field"] == "matchers.0"
    backwards = await client.post(
        "/api/v1/maintenance", json={**window, "end": window["start"]}, headers=API
    )
    assert backwards.status == 400 and (await backwards.json())["field"] == "end"
    created = await client.post("/api/v1/maintenance", json=window, headers=API)
    assert created.status == 201
    listed = await (await client.get("/api/v1/maintenance", headers=API)).json()
    assert [w["reason"] for w in listed["windows"]] == ["EU database failover drill"]

    await receive(client, load("tensafe_api_down.json"))  # cluster prod-eu-1: in the window
    await receive(client, notification(am_alert("DatabaseDown", cluster="prod-us-1")))
    sent = (await (await client.get("/api/v1/deliveries", headers=API)).json())["deliveries"]
    by_alert: dict[int, list[dict[str, Any]]] = {}
    for delivery in sent:
        by_alert.setdefault(delivery["alert_id"], []).append(delivery)
    eu, us = sorted(by_alert.items())
    assert [(d["target"], d["kind"]) for d in eu[1]] == [("slack", "message")]
    note = json.dumps(eu[1][0]["payload"])
    assert "EU database failover drill" in note and "not paged" in note
    assert sorted(d["target"] for d in us[1]) == ["pagerduty", "slack"]

    clock.advance(hours=2)  # the window is over: listed only with all=true, pages again
    assert (await (await client.get("/api/v1/maintenance", headers=API)).json())["windows"] == []
    past = await client.get("/api/v1/maintenance", params={"all": "true"}, headers=API)
    assert len((await past.json())["windows"]) == 1


async def test_dead_letters_are_listed_and_retried(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    await client.app[DISPATCHER_KEY].stop()  # this test plays the dispatcher
    await receive(client, load("new_customer_info.json"))
    store = client.app[WEBHOOK_KEY].store
    [ticket] = await store.claim("zendesk", 10, clock(), 60)
    await store.mark_dead(ticket.id, clock(), "422 RecordInvalid: requester email is invalid")
    dead = await (
        await client.get("/api/v1/deliveries", params={"state": "dead"}, headers=API)
    ).json()
    assert [(d["id"], d["last_error"], d["attempts"]) for d in dead["deliveries"]] == [
        (ticket.id, "422 RecordInvalid: requester email is invalid", 1)
    ]
    await sweep_once(client.app[WEBHOOK_KEY])
    assert await metric(client, "tensafe_webhook_dead_letters", target="zendesk") == 1.0

    clock.advance(minutes=5)
    retried = await client.post(f"/api/v1/deliveries/{ticket.id}/retry", headers=API)
    assert retried.status == 200 and (await retried.json())["state"] == "pending"
    assert (await client.post(f"/api/v1/deliveries/{ticket.id}/retry", headers=API)).status == 409
    assert (await client.post("/api/v1/deliveries/424242/retry", headers=API)).status == 404
    [again] = await store.claim("zendesk", 10, clock(), 60)
    assert again.id == ticket.id and again.idempotency_key == ticket.idempotency_key
    await sweep_once(client.app[WEBHOOK_KEY])
    assert await metric(client, "tensafe_webhook_dead_letters", target="zendesk") == 0.0
    assert await metric(client, "tensafe_webhook_outbox_depth", target="zendesk") == 1.0


async def test_stale_alerts_are_listed_and_counted(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock, stale_after=3600)
    await receive(client, load("disk_space_truncated.json"))
    clock.advance(minutes=30)
    await receive(client, load("disk_space_truncated.json"))  # a repeat keeps them alive
    clock.advance(minutes=45)
    await sweep_once(client.app[WEBHOOK_KEY])
    assert (
        await metric(client, "tensafe_webhook_stale_alerts_closed_total", severity="warning") == 0.0
    )
    clock.advance(minutes=20)  # 65 min since the last notification; its resolve never came
    await sweep_once(client.app[WEBHOOK_KEY])
    assert (
        await metric(client, "tensafe_webhook_stale_alerts_closed_total", severity="warning") == 3.0
    )
    response = await client.get("/api/v1/alerts", params={"state": "stale"}, headers=API)
    stale = (await response.json())["alerts"]
    assert len(stale) == 3 and all(a["closed_at"] == "2026-11-27T13:35:00Z" for a in stale)
    assert (
        await metric(
            client, "tensafe_webhook_open_alerts", severity="warning", acknowledged="false"
        )
        == 0.0
    )
