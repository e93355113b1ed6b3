"""Properties over every management endpoint's inputs (the receiver's own are in
tests/webhook/test_fuzz.py): whatever comes in, the answer is never a 5xx, and nothing it
stores breaks a later read — every list endpoint still answers 200, and a notification
after it is still routed (ingested, not set aside)."""

import json
import os
import string
from datetime import UTC, datetime, timedelta, timezone
from itertools import count
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.webhook.am import API, AUTH, am_alert, ingest, notification, pd_event, signed, start
from webhook.handlers import WEBHOOK_KEY

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def examples(n: int) -> settings:
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, suppress_health_check=QUIET)


LISTS = (
    "/api/v1/alerts?limit=1000",
    "/api/v1/deliveries?limit=1000",
    "/api/v1/maintenance?all=true",
    "/api/v1/notifications/failed?limit=1000",
)
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda minutes: timedelta(minutes=minutes))
near_now = st.datetimes(min_value=datetime(2026, 11, 27), max_value=datetime(2026, 11, 28))
edges = st.one_of(  # where an offset takes a time past what can be stored ("forever" in -05:00)
    st.datetimes(min_value=datetime(9999, 12, 31), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 1, 23, 59, 59)),
    st.datetimes(min_value=datetime(1969, 12, 31), max_value=datetime(1970, 1, 1, 23, 59, 59)),
)
moments = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    near_now,
    edges,
)


def zoned(moment: datetime, offset: timedelta) -> str:
    return moment.replace(tzinfo=timezone(offset)).isoformat()


utc_near_now = near_now.map(lambda m: zoned(m, timedelta(0)))
zoned_edges = st.builds(zoned, edges, offsets)
times = st.one_of(
    st.builds(zoned, moments, offsets),
    moments.map(datetime.isoformat),  # no time zone
    st.sampled_from(["9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z"]),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False),
    st.text(max_size=25),
    st.none(),
)
label_names = st.sampled_from(["alertname", "severity", "cluster", "job", "", "ü"]) | st.text(
    max_size=8
)
matchers = st.one_of(
    st.builds(
        lambda name, op, value: f"{name}{op}{json.dumps(value)}",
        label_names,
        st.sampled_from(["=", "!=", "=~", "!~"]),
        st.sampled_from(["critical", ".*", "(", "[", "a|b", "prod-.*", ""]) | st.text(max_size=12),
    ),
    st.text(max_size=30),
)
texts = st.text(max_size=60) | st.sampled_from(["", "\x00", "a\x00b", "\ud800", "x" * 600])
valid_matchers = st.lists(
    st.builds(
        lambda name, op, value: f"{name}{op}{json.dumps(value)}",
        st.sampled_from(["alertname", "severity", "cluster", "job"]),
        st.sampled_from(["=", "!=", "=~", "!~"]),
        st.sampled_from(["critical", "prod-eu-1", "tensafe-api", ".*", "Prop.*"]),
    ),
    min_size=1,
    max_size=3,
)
ids = st.one_of(
    st.integers(-5, 2**70).map(str),
    st.text(alphabet=string.digits + "-+e. ٣", max_size=24),
    st.text(max_size=10),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_alerts = count()


@pytest.fixture
async def client(aiohttp_client, tmp_path, state_db_url, clock):  # type: ignore[no-untyped-def]
    return await start(aiohttp_client, tmp_path, state_db_url, clock)


async def reads_back(client: Any) -> None:
    """Every list answers 200, and a new critical alert is routed (ingested, not set aside)."""
    for path in LISTS:
        response = await client.get(path, headers=API)
        assert response.status == 200, (path, await response.text())
    started = datetime(2026, 11, 27, 11, 0, tzinfo=UTC) + timedelta(seconds=next(_alerts))
    probe = am_alert("PropertyProbe", cluster="prod-eu-1", starts_at=started)
    response = await client.post("/api/v1/alerts", json=notification(probe), headers=AUTH)
    assert response.status == 200
    await ingest(client.app)
    stats = client.app[WEBHOOK_KEY].stats
    assert stats.ingest_failures == 0 and stats.accepted == stats.ingested


def no_server_error(status: int, text: str) -> None:
    assert status < 500, text
    if status == 400:
        assert json.loads(text)["field"], text


@examples(60)
@given(
    start=utc_near_now | st.builds(zoned, moments, offsets),
    end=utc_near_now | zoned_edges | st.builds(zoned, moments, offsets),
    matchers=valid_matchers,
)
async def test_maintenance_window_dates(client, start, end, matchers) -> None:  # type: ignore[no-untyped-def]
    """Windows that are valid but for their dates: any time zone, any year."""
    await window_round_trip(client, {"start": start, "end": end, "matchers": matchers})


@examples(60)
@given(
    start=times,
    end=times,
    matchers=st.lists(matchers, max_size=4),
    reason=texts,
    by=texts | st.none(),
    extra=st.dictionaries(st.sampled_from(["id", "ends_at", "until"]), json_values, max_size=1),
)
async def test_maintenance_bodies(client, start, end, matchers, reason, by, extra) -> None:  # type: ignore[no-untyped-def]
    body = {"start": start, "end": end, "matchers": matchers, "reason": reason, **extra}
    if by is not None:
        body["by"] = by
    await window_round_trip(client, body)


async def window_round_trip(client: Any, body: dict[str, Any]) -> None:
    """Create the window; if stored, it reads back in bounds and can be ended and deleted;
    either way, everything still reads and routes."""
    body.setdefault("reason", "upgrade")
    response = await client.post("/api/v1/maintenance", json=body, headers=API)
    no_server_error(response.status, await response.text())
    assert response.status in (201, 400)
    if response.status == 201:
        window = await response.json()
        first = datetime.fromisoformat(window["start"])
        last = datetime.fromisoformat(window["end"])
        assert datetime(1970, 1, 1, tzinfo=UTC) <= first < last
        assert last <= datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        path = f"/api/v1/maintenance/{window['id']}"
        ended = await client.post(f"{path}/end", headers=API)
        assert ended.status in (200, 409), await ended.text()
        deleted = await client.delete(path, headers=API)
        assert deleted.status == 204, await deleted.text()
    await reads_back(client)


@examples(60)
@given(
    alert_id=ids,
    body=st.one_of(
        st.fixed_dictionaries({"by": texts}, optional={"note": texts, "x": json_values}),
        json_values,
    ),
)
async def test_acknowledgements(client, alert_id, body) -> None:  # type: ignore[no-untyped-def]
    path = f"/api/v1/alerts/{quote(alert_id, safe='')}/ack"
    response = await client.post(path, json=body, headers=API)
    no_server_error(response.status, await response.text())
    assert response.status in (200, 400, 404, 409)
    await reads_back(client)


@examples(60)
@given(
    event_type=st.sampled_from(["incident.acknowledged", "incident.resolved", "incident.triggered"])
    | st.text(max_size=12),
    occurred_at=times,
    key_suffix=st.sampled_from(["", ":2026-11-27T11:50:00Z"]) | st.text(max_size=20),
    agent=json_values,
    event_id=st.none() | st.text(max_size=30),
    webhook_id=st.none() | st.text(alphabet=string.printable.strip(), max_size=300),
)
async def test_pagerduty_webhooks(  # type: ignore[no-untyped-def]
    client, event_type, occurred_at, key_suffix, agent, event_id, webhook_id
) -> None:
    alerts = (await (await client.get("/api/v1/alerts", headers=API)).json())["alerts"]
    key = (
        alerts[0]["pagerduty_incident_key"]
        if alerts and not key_suffix
        else f"tensafe:{key_suffix}"
    )
    event = json.loads(pd_event(event_type, key, "2026-11-27T11:55:00Z"))
    event["event"]["occurred_at"] = occurred_at
    event["event"]["agent"] = {"summary": agent}
    event["event"]["id"] = event_id
    body = json.dumps(event).encode()
    headers = {"X-PagerDuty-Signature": signed(body)}
    if webhook_id is not None:
        headers["X-Webhook-Id"] = webhook_id
    response = await client.post("/api/v1/pagerduty/webhook", data=body, headers=headers)
    no_server_error(response.status, await response.text())
    assert response.status in (200, 400)
    await reads_back(client)


@examples(80)
@given(
    path=st.sampled_from(LISTS).map(lambda p: p.split("?")[0]),
    query=st.dictionaries(st.sampled_from(["state", "severity", "limit", "all", "x"]), texts),
    retry=st.sampled_from(
        [
            "/api/v1/deliveries/{}/retry",
            "/api/v1/notifications/{}/retry",
            "/api/v1/maintenance/{}/end",
        ]
    ),
    target=ids,
)
async def test_queries_and_ids(client, path, query, retry, target) -> None:  # type: ignore[no-untyped-def]
    query = {k: v.replace("\x00", "").encode("utf-8", "replace").decode() for k, v in query.items()}
    response = await client.get(f"{path}?{urlencode(query)}", headers=API)
    no_server_error(response.status, await response.text())
    assert response.status in (200, 400)
    response = await client.post(retry.format(quote(target, safe="")), headers=API)
    no_server_error(response.status, await response.text())
    assert response.status in (200, 404, 409)
    response = await client.delete(f"/api/v1/maintenance/{quote(target, safe='')}", headers=API)
    assert response.status in (204, 404)
