"""A PagerDuty acknowledgement belongs to the firing it answers.

Every occurrence of an alert (fingerprint + startsAt) pages PagerDuty under its own incident
key; an ack names that key, and one whose `occurred_at` precedes the occurrence's start is
ignored. So a signed ack replayed (with a fresh X-Webhook-Id, or none) after the alert fired
again cannot mark the new firing acknowledged, and its SLA still breaches."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tests.webhook.am import (
    API,
    am_alert,
    metric,
    notification,
    pd_event,
    receive,
    resolved,
    signed,
    start,
)
from webhook import sweep_once
from webhook.handlers import WEBHOOK_KEY
from webhook.tables import alerts, pagerduty_webhooks

URL = "/api/v1/pagerduty/webhook"
FIRST = datetime(2026, 11, 27, 11, 50, tzinfo=UTC)
SECOND = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)


async def listed(client: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await (await client.get("/api/v1/alerts", headers=API)).json())[
        "alerts"
    ]
    return found


async def post_event(client: Any, body: bytes, webhook_id: str | None) -> tuple[int, str]:
    headers = {"X-PagerDuty-Signature": signed(body)}
    if webhook_id is not None:
        headers["X-Webhook-Id"] = webhook_id
    response = await client.post(URL, data=body, headers=headers)
    answer = await response.json()
    return response.status, answer.get("status", answer.get("error"))


async def test_a_replayed_ack_does_not_acknowledge_the_next_firing(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    first = am_alert("TensafeApiDown", starts_at=FIRST)
    await receive(client, notification(first))
    [alert] = await listed(client)
    first_key = alert["pagerduty_incident_key"]
    assert first_key.startswith(f"tensafe:{first['fingerprint']}:")
    ack = pd_event("incident.acknowledged", first_key, "2026-11-27T12:02:00Z")
    assert await post_event(client, ack, "w-1") == (200, "acknowledged")
    clock.advance(minutes=10)
    await receive(client, notification(resolved(first, clock())))
    clock.advance(minutes=20)  # 12:30: the same alert fires again
    await receive(client, notification(am_alert("TensafeApiDown", starts_at=SECOND)))
    newest, _ = await listed(client)
    assert newest["state"] == "firing" and newest["pagerduty_incident_key"] != first_key

    # The captured ack, replayed: the same delivery, a new X-Webhook-Id, none at all.
    assert await post_event(client, ack, "w-1") == (200, "duplicate")
    assert await post_event(client, ack, "w-replayed") == (200, "already_answered")
    assert await post_event(client, ack, None) == (200, "already_answered")
    # An ack naming the new incident but dated before it started is not about it either.
    early = pd_event("incident.acknowledged", newest["pagerduty_incident_key"], "2026-11-27T12:02Z")
    assert await post_event(client, early, "w-early") == (200, "predates_alert")

    [newest, _] = await listed(client)
    assert newest["acknowledged_at"] is None
    clock.advance(minutes=16)  # past the 15 min SLA of the new firing
    await sweep_once(client.app[WEBHOOK_KEY])
    [newest, _] = await listed(client)
    assert newest["breached"] is True
    assert await metric(client, "tensafe_webhook_sla_breaches_total", severity="critical") == 1.0
    outcome = "tensafe_webhook_pagerduty_webhooks_total"
    assert await metric(client, outcome, outcome="predates_alert") == 1.0
    assert await metric(client, outcome, outcome="already_answered") == 2.0

    on_time = pd_event(
        "incident.acknowledged", newest["pagerduty_incident_key"], "2026-11-27T12:46Z"
    )
    assert await post_event(client, on_time, "w-2") == (200, "acknowledged")
    [newest, _] = await listed(client)
    assert newest["acknowledged_at"] == "2026-11-27T12:46:00Z"


async def test_acks_for_legacy_incident_keys_pick_the_firing_they_follow(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    """Occurrences stored by an older release share `tensafe:<fingerprint>`: the ack goes to
    the newest occurrence that had started when it happened."""
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    first = am_alert("TensafeApiDown", starts_at=FIRST)
    await receive(client, notification(first))
    clock.advance(minutes=10)
    await receive(client, notification(resolved(first, clock())))
    clock.advance(minutes=20)
    await receive(client, notification(am_alert("TensafeApiDown", starts_at=SECOND)))
    legacy = f"tensafe:{first['fingerprint']}"
    async with client.app[WEBHOOK_KEY].store.writing() as conn:
        await conn.execute(sa.update(alerts).values(pd_dedup_key=legacy))
    late_replay = pd_event("incident.acknowledged", legacy, "2026-11-27T12:02:00Z")
    assert await post_event(client, late_replay, "w-old") == (200, "already_answered")
    now = pd_event("incident.acknowledged", legacy, "2026-11-27T12:30:00Z")
    assert await post_event(client, now, "w-new") == (200, "acknowledged")
    newest, older = await listed(client)
    assert newest["acknowledged_at"] == "2026-11-27T12:30:00Z"
    assert older["acknowledged_at"] is None and older["state"] == "resolved"


async def test_a_webhook_id_of_any_length_is_stored_as_a_hash(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    await receive(client, notification(am_alert("TensafeApiDown", starts_at=FIRST)))
    [alert] = await listed(client)
    body = pd_event("incident.acknowledged", alert["pagerduty_incident_key"], "2026-11-27T12:01Z")
    long_id = "w" * 4000
    assert await post_event(client, body, long_id) == (200, "acknowledged")
    assert await post_event(client, body, long_id) == (200, "duplicate")  # PagerDuty's retry
    async with client.app[WEBHOOK_KEY].store.engine.connect() as conn:
        stored = list((await conn.execute(sa.select(pagerduty_webhooks.c.webhook_id))).scalars())
    assert [len(s) for s in stored] == [64]
