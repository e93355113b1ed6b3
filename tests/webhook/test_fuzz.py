"""Property: whatever Alertmanager (or anything else) posts, the receiver answers 200, 400 or
413 — never 5xx — and 200 only for bodies the schema accepts; and whatever it accepted
ingests cleanly (nothing set aside as failed) on SQLite and on PostgreSQL."""

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import FakeClock
from tests.webhook.am import AUTH, am_alert, ingest, notification, webhook_app
from webhook.handlers import WEBHOOK_KEY

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))  # e.g. FUZZ_SCALE=10 for a long soak
QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
STRUCTURED = settings(max_examples=int(500 * SCALE), deadline=None, suppress_health_check=QUIET)
RAW = settings(max_examples=int(2000 * SCALE), deadline=None, suppress_health_check=QUIET)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
label_sets = st.dictionaries(
    st.sampled_from(["alertname", "severity", "instance", "team", "ünïcode", ""])
    | st.text(max_size=12),
    st.sampled_from(["critical", "warning", "info", "DiskSpace", ""]) | st.text(max_size=40),
    max_size=6,
)
offsets = st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23))
times = (
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31))
    .flatmap(lambda moment: offsets.map(lambda delta: moment.replace(tzinfo=timezone(delta))))
    .map(datetime.isoformat)
) | st.sampled_from(["0001-01-01T00:00:00Z", "2026-11-27T12:00:00.123456789Z", "nope", ""])


@st.composite
def alerts(draw: st.DrawFn) -> dict[str, Any]:
    alert = am_alert(draw(st.text(max_size=30)), draw(st.none() | st.text(max_size=10)))
    alert["labels"].update(draw(label_sets))
    alert["status"] = draw(st.sampled_from(["firing"] * 4 + ["resolved"] * 3 + ["pending"]))
    if draw(st.integers(0, 3)) == 0:  # mostly keep the valid times the factory wrote
        alert["startsAt"] = draw(times)
        alert["endsAt"] = draw(times)
    alert["fingerprint"] = draw(
        st.from_regex(r"\A[0-9a-f]{16}\Z")
        | st.from_regex(r"\A[0-9a-f]{16}\Z")
        | st.text(max_size=17)
    )
    return alert


def damage(draw: st.DrawFn, obj: dict[str, Any]) -> None:
    """Delete a field or give it any JSON value."""
    for key in draw(st.lists(st.sampled_from(sorted(obj)), max_size=2)):
        if draw(st.booleans()):
            obj.pop(key, None)
        else:
            obj[key] = draw(json_values)


@st.composite
def notifications(draw: st.DrawFn) -> dict[str, Any]:
    items = draw(st.lists(alerts(), max_size=5))
    body = notification(*items, truncated=draw(st.integers(-1, 10**20)))
    for alert in items:
        if draw(st.integers(0, 4)) == 0:
            damage(draw, alert)
    if draw(st.integers(0, 3)) == 0:
        damage(draw, body)
    return body


async def make_client(aiohttp_client: Any, tmp_path: Path, db: str | None = None) -> TestClient:  # type: ignore[type-arg]
    db = db or f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    client: TestClient = await aiohttp_client(webhook_app(tmp_path, db, FakeClock()))  # type: ignore[type-arg]
    return client


@STRUCTURED
@given(body=notifications())
async def test_structured_payloads_never_5xx(
    aiohttp_client, tmp_path, body: dict[str, Any]
) -> None:  # type: ignore[no-untyped-def]
    client = getattr(test_structured_payloads_never_5xx, "client", None)
    if client is None or client.app is None or client.session.closed:
        client = await make_client(aiohttp_client, tmp_path)
        test_structured_payloads_never_5xx.client = client  # type: ignore[attr-defined]
    response = await client.post("/api/v1/alerts", data=json.dumps(body), headers=AUTH)
    answer = await response.json()
    event(f"HTTP {response.status}")
    assert response.status in (200, 400), answer
    if response.status == 400:
        assert answer["field"] and answer["detail"]
    else:
        assert answer["alerts"] == len(body["alerts"])
        await ingested_cleanly(client)


async def ingested_cleanly(client: TestClient) -> None:  # type: ignore[type-arg]
    await ingest(client.app)
    stats = client.app[WEBHOOK_KEY].stats
    assert stats.ingest_failures == 0 and stats.accepted == stats.ingested


@RAW
@given(raw=st.binary(max_size=2048) | st.text(max_size=2048).map(str.encode))
async def test_raw_bodies_never_5xx(aiohttp_client, tmp_path, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    client = getattr(test_raw_bodies_never_5xx, "client", None)
    if client is None or client.session.closed:
        client = await make_client(aiohttp_client, tmp_path)
        test_raw_bodies_never_5xx.client = client  # type: ignore[attr-defined]
    response = await client.post("/api/v1/alerts", data=raw, headers=AUTH)
    assert response.status == 400


@settings(max_examples=int(150 * SCALE), deadline=None, suppress_health_check=QUIET)
@given(body=notifications())
async def test_structured_payloads_never_5xx_on_postgres(
    pg_url, aiohttp_client, tmp_path, body: dict[str, Any]
) -> None:  # type: ignore[no-untyped-def]
    client = getattr(test_structured_payloads_never_5xx_on_postgres, "client", None)
    if client is None or client.session.closed:
        client = await make_client(aiohttp_client, tmp_path, pg_url)
        test_structured_payloads_never_5xx_on_postgres.client = client  # type: ignore[attr-defined]
    response = await client.post("/api/v1/alerts", data=json.dumps(body), headers=AUTH)
    assert response.status in (200, 400), await response.text()
    if response.status == 200:
        await ingested_cleanly(client)
