"""Extreme dates: nothing an operator (or a sender) enters may stop paging.

Every datetime the webhook accepts needs a time zone and must lie between
1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z in UTC; stored times outside what Python can
read back (left by an older release) are read clamped, and routing that meets a window it
cannot evaluate pages anyway."""

import json
import time
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from tests.webhook.am import (
    API,
    AUTH,
    am_alert,
    load,
    notification,
    pd_event,
    receive,
    signed,
    start,
)
from webhook.handlers import WEBHOOK_KEY
from webhook.tables import maintenance

WINDOW = {
    "start": "2026-11-27T11:00:00Z",
    "end": "2026-11-27T13:00:00Z",
    "matchers": ['cluster="prod-eu-1"'],
    "reason": "EU failover drill",
}

OUT_OF_RANGE = [
    "9999-12-31T23:00:00-05:00",  # a natural "forever" in a US time zone: year 10000 in UTC
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "1969-12-31T23:59:59Z",
    "2026-11-27T13:00:00",  # no time zone
    "10000-01-01T00:00:00Z",
]


async def targets_of_newest_alert(client: Any) -> list[str]:
    deliveries = (await (await client.get("/api/v1/deliveries", headers=API)).json())["deliveries"]
    newest = max(d["alert_id"] for d in deliveries)
    return sorted(d["target"] for d in deliveries if d["alert_id"] == newest)


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
async def test_a_window_outside_the_date_bounds_is_refused_and_paging_goes_on(
    aiohttp_client, tmp_path, clock, moment
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/s.db", clock)
    field = "start" if moment.startswith(("0001", "1969")) else "end"
    response = await client.post("/api/v1/maintenance", json={**WINDOW, field: moment}, headers=API)
    assert response.status == 400, await response.text()
    answer = await response.json()
    assert answer["field"] == field
    if not moment.startswith("10000"):  # that one is not even a datetime to pydantic
        assert "time zone" in answer["detail"] or "1970-01-01T00:00:00Z" in answer["detail"]
    listed = await client.get("/api/v1/maintenance", params={"all": "true"}, headers=API)
    assert listed.status == 200 and (await listed.json())["windows"] == []
    await receive(client, load("tensafe_api_down.json"))  # cluster prod-eu-1
    assert await targets_of_newest_alert(client) == ["pagerduty", "slack"]


async def test_forever_in_utc_is_accepted_and_holds_pages_back(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    forever = {**WINDOW, "end": "9999-12-31T23:59:59Z"}
    created = await client.post("/api/v1/maintenance", json=forever, headers=API)
    assert created.status == 201 and (await created.json())["end"] == "9999-12-31T23:59:59Z"
    offset = {**WINDOW, "start": "2026-11-27T12:30:00+01:00", "reason": "offset"}
    created = await client.post("/api/v1/maintenance", json=offset, headers=API)
    assert (await created.json())["start"] == "2026-11-27T11:30:00Z"  # stored in UTC
    listed = await client.get("/api/v1/maintenance", headers=API)
    assert listed.status == 200 and len((await listed.json())["windows"]) == 2
    await receive(client, load("tensafe_api_down.json"))
    assert await targets_of_newest_alert(client) == ["slack"]  # the note, not the page


async def test_a_window_stored_by_an_older_release_does_not_stop_routing(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    """The rows an older release stored for `"end": "9999-12-31T23:00:00-05:00"` (year 10000
    in UTC) and for a broken matcher: every notification failed ingest and was set aside."""
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    webhook = client.app[WEBHOOK_KEY]
    rows = [
        {"starts_at": 1.0e9, "ends_at": 253402315200.0, "matchers": '["cluster=\\"prod-eu-1\\""]'},
        {"starts_at": -62135600400.0, "ends_at": 2.0e9, "matchers": '["job=\\"tensafe-api\\""]'},
        {"starts_at": 1.0e9, "ends_at": 2.0e9, "matchers": '["cluster=~\\"(\\""]'},
        {"starts_at": 1.0e9, "ends_at": 2.0e9, "matchers": "not json"},
    ]
    common = {"reason": "legacy", "created_by": "api", "created_at": 1.0e9}
    async with webhook.store.writing() as conn:
        await conn.execute(sa.insert(maintenance), [row | common for row in rows])
    with capture_logs() as logs:
        await receive(client, notification(am_alert("DatabaseDown", cluster="prod-us-1")))
    failed = await client.get("/api/v1/notifications/failed", headers=API)
    assert (await failed.json())["notifications"] == []
    # The two readable windows (read back clamped) match every tensafe-api alert: the page is
    # held back by them, as an operator asked; the two unreadable ones are skipped and logged.
    assert await targets_of_newest_alert(client) == ["slack"]
    unreadable = [e for e in logs if e["event"] == "maintenance_window_unreadable"]
    assert len(unreadable) == 2 and all(e["log_level"] == "error" for e in unreadable)
    listed = await client.get("/api/v1/maintenance", params={"all": "true"}, headers=API)
    assert listed.status == 200
    ends = sorted(w["end"] for w in (await listed.json())["windows"])
    assert ends[-1] == "9999-12-31T23:59:59Z"
    alerts = await client.get("/api/v1/alerts", headers=API)
    assert alerts.status == 200


async def test_only_unreadable_windows_page_as_if_there_were_none(
    aiohttp_client, tmp_path, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/s.db", clock)
    async with client.app[WEBHOOK_KEY].store.writing() as conn:
        await conn.execute(
            sa.insert(maintenance).values(
                starts_at=1.0e9,
                ends_at=2.0e9,
                matchers='["severity=~\\"[\\""]',
                reason="broken",
                created_by="api",
                created_at=1.0e9,
            )
        )
    await receive(client, load("tensafe_api_down.json"))
    assert await targets_of_newest_alert(client) == ["pagerduty", "slack"]


@pytest.mark.parametrize(
    "when",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00", "1960-01-01T00:00:00Z"],
)
async def test_alertmanager_times_outside_the_bounds_are_400(
    aiohttp_client, tmp_path, clock, when
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/s.db", clock)
    alert = am_alert("DiskFull")
    for field in ("startsAt", "endsAt"):
        body = notification({**alert, field: when})
        response = await client.post("/api/v1/alerts", json=body, headers=AUTH)
        assert response.status == 400, (field, await response.text())
        assert (await response.json())["field"] == f"alerts.0.{field}"
    zero = notification({**alert, "endsAt": "0001-01-01T00:00:00Z"})  # Go's zero time: no end
    assert (await client.post("/api/v1/alerts", json=zero, headers=AUTH)).status == 200


@pytest.mark.parametrize(
    ("occurred_at", "status"),
    [
        ("2026-11-27T12:02:00", 400),  # no time zone
        ("0001-01-01T00:00:00+01:00", 400),
        ("9999-12-31T23:00:00-05:00", 400),
        ("2026-11-27T12:02:00Z", 200),
    ],
)
async def test_pagerduty_occurred_at_is_bounded(
    aiohttp_client, tmp_path, state_db_url, clock, occurred_at, status
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    await receive(client, load("tensafe_api_down.json"))
    clock.advance(minutes=5)
    listed = await (await client.get("/api/v1/alerts", headers=API)).json()
    key = listed["alerts"][0]["pagerduty_incident_key"]
    body = pd_event("incident.acknowledged", key, occurred_at)
    headers = {"X-PagerDuty-Signature": signed(body), "X-Webhook-Id": "w-1"}
    response = await client.post("/api/v1/pagerduty/webhook", data=body, headers=headers)
    assert response.status == status, await response.text()
    if status == 400:
        assert (await response.json())["field"] == "event.occurred_at"
    alerts = await client.get("/api/v1/alerts", headers=API)
    assert alerts.status == 200
    acked = (await alerts.json())["alerts"][0]["acknowledged_at"]
    assert acked == (None if status == 400 else "2026-11-27T12:02:00Z")


async def test_an_ack_from_the_future_is_recorded_at_its_arrival(
    aiohttp_client, tmp_path, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/s.db", clock)
    await receive(client, load("tensafe_api_down.json"))
    listed = await (await client.get("/api/v1/alerts", headers=API)).json()
    key = listed["alerts"][0]["pagerduty_incident_key"]
    body = pd_event("incident.acknowledged", key, "9999-12-31T23:59:59Z")
    headers = {"X-PagerDuty-Signature": signed(body), "X-Webhook-Id": "w-future"}
    response = await client.post("/api/v1/pagerduty/webhook", data=body, headers=headers)
    assert (await response.json())["status"] == "acknowledged"
    alert = (await (await client.get("/api/v1/alerts", headers=API)).json())["alerts"][0]
    assert alert["acknowledged_at"] == "2026-11-27T12:00:00Z"  # the clock, not year 9999
    assert json.dumps(alert)  # and it reads back


async def test_a_backtracking_regex_in_a_window_cannot_stall_routing(
    aiohttp_client, tmp_path, clock
) -> None:  # type: ignore[no-untyped-def]
    """`(a+)+b` against forty `a`s takes a backtracking engine hours; matchers use RE2, as
    Alertmanager does, which takes linear time."""
    client = await start(aiohttp_client, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/s.db", clock)
    window = {**WINDOW, "matchers": ['alertname=~"(a+)+b"']}
    assert (await client.post("/api/v1/maintenance", json=window, headers=API)).status == 201
    started = time.monotonic()
    await receive(client, notification(am_alert("a" * 40)))
    assert time.monotonic() - started < 5
    assert await targets_of_newest_alert(client) == ["pagerduty", "slack"]  # no match: paged
    backreference = {**WINDOW, "matchers": ['alertname=~"(a)\\\\1"']}  # RE2 has none
    refused = await client.post("/api/v1/maintenance", json=backreference, headers=API)
    assert refused.status == 400 and (await refused.json())["field"] == "matchers.0"
