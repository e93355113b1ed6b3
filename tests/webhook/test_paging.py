"""Paging the alerts and deliveries lists: a storm's 10,000 alerts, all listed once, newest
first, through `next` links, filtered by time; bad paging parameters are clear 400s."""

import json
from base64 import urlsafe_b64encode
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import FakeClock
from tests.webhook.am import API, am_alert, notification, rfc3339, start
from webhook.handlers import WEBHOOK_KEY
from webhook.ids import ID_MAX
from webhook.paging import decode_cursor, encode_cursor
from webhook.payload import parse_notification

STORM = 10_000
PER_MINUTE = 100
"""Alerts stored per simulated minute: the storm spans 100 minutes."""


async def store_storm(client: TestClient[Any, Any], clock: FakeClock) -> None:
    """10,000 distinct alerts (every 4th critical: two deliveries; else warning: one), 100 a
    minute, written as the ingester writes them (the journal is not what is tested here)."""
    store = client.app[WEBHOOK_KEY].store
    for minute in range(STORM // PER_MINUTE):
        group = [
            am_alert(
                "DiskFilling" if n % 4 else "TenSafeAPIDown",
                "critical" if n % 4 == 0 else "warning",
                instance=f"node-{minute}-{n}:9100",
            )
            for n in range(PER_MINUTE)
        ]
        parsed = parse_notification(json.dumps(notification(*group)).encode())
        async with store.writing() as conn:
            await store.apply(conn, [(parsed, clock())])
        clock.advance(minutes=1)


async def every_page(
    client: TestClient[Any, Any], path: str, key: str, **params: str
) -> tuple[list[dict[str, Any]], int]:
    """Follow `next` from the first page to the last: every row, and how many pages."""
    response = await client.get(path, params=params, headers=API)
    rows: list[dict[str, Any]] = []
    pages = 0
    while True:
        assert response.status == 200, await response.text()
        body = await response.json()
        rows += body[key]
        pages += 1
        if body["next"] is None:
            assert "Link" not in response.headers
            return rows, pages
        assert response.headers["Link"] == f'<{body["next"]}>; rel="next"'
        response = await client.get(body["next"], headers=API)


async def test_a_storms_ten_thousand_alerts_are_listed_once_each_newest_first(
    aiohttp_client: Any, tmp_path: Any, state_db_url: str, clock: FakeClock
) -> None:
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    began = clock()
    await store_storm(client, clock)

    listed, pages = await every_page(client, "/api/v1/alerts", "alerts", limit="1000")
    ids = [a["id"] for a in listed]
    assert len(ids) == len(set(ids)) == STORM and pages == 10
    assert ids == sorted(ids, reverse=True)

    # Filters and the time window carry over to every page.
    since, until = began + timedelta(minutes=20), began + timedelta(minutes=50)
    window = {"since": rfc3339(since), "until": rfc3339(until)}
    critical, pages = await every_page(
        client, "/api/v1/alerts", "alerts", severity="critical", limit="300", **window
    )
    assert len(critical) == 30 * PER_MINUTE // 4 and pages == 3  # 750 over 30 minutes
    received = {a["first_received_at"] for a in critical}
    assert min(received) == rfc3339(since) and max(received) < rfc3339(until)
    assert {a["severity"] for a in critical} == {"critical"}

    deliveries, pages = await every_page(
        client, "/api/v1/deliveries", "deliveries", state="pending", limit="1000", **window
    )
    assert len(deliveries) == 30 * (PER_MINUTE + PER_MINUTE // 4) and pages == 4  # 3,750
    assert len({d["id"] for d in deliveries}) == len(deliveries)


async def test_rows_arriving_while_paging_are_neither_repeated_nor_skipped(
    aiohttp_client: Any, tmp_path: Any, state_db_url: str, clock: FakeClock
) -> None:
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    store = client.app[WEBHOOK_KEY].store

    async def add(count: int, name: str) -> None:
        group = [am_alert(name, "warning", instance=f"{name}-{n}") for n in range(count)]
        parsed = parse_notification(json.dumps(notification(*group)).encode())
        async with store.writing() as conn:
            await store.apply(conn, [(parsed, clock())])

    await add(25, "Before")
    first = await (await client.get("/api/v1/alerts?limit=10", headers=API)).json()
    await add(5, "During")  # newer: on a new first page, not in this walk
    second = await (await client.get(first["next"], headers=API)).json()
    third = await (await client.get(second["next"], headers=API)).json()
    walked = first["alerts"] + second["alerts"] + third["alerts"]
    assert [a["alertname"] for a in walked] == ["Before"] * 25
    assert len({a["id"] for a in walked}) == 25 and third["next"] is None
    fresh = await (await client.get("/api/v1/alerts?limit=5", headers=API)).json()
    assert [a["alertname"] for a in fresh["alerts"]] == ["During"] * 5


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-ours", "cursor"),
        (f"cursor={encode_cursor(5)}x", "cursor"),
        # Forged numbers past a 64-bit id: the database driver cannot bind them.
        (f"cursor={encode_cursor(ID_MAX + 1)}", "cursor"),
        (f"cursor={encode_cursor(9_999_999_999_999_999_999)}", "cursor"),
        (f"cursor={urlsafe_b64encode('v1:²'.encode()).decode()}", "cursor"),  # not ASCII
        ("since=2026-11-27T12:00:00", "since"),  # no time zone
        ("until=yesterday", "until"),
        ("since=2026-11-27T12:00:00Z&until=2026-11-27T11:00:00Z", "until"),
        ("since=10000-01-01T00:00:00Z", "since"),
    ],
)
async def test_bad_paging_parameters_are_400s_naming_the_field(
    aiohttp_client: Any, tmp_path: Any, state_db_url: str, clock: FakeClock, query: str, field: str
) -> None:
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    for path in ("/api/v1/alerts", "/api/v1/deliveries"):
        response = await client.get(f"{path}?{query}", headers=API)
        assert response.status == 400, await response.text()
        assert (await response.json())["field"] == field


def test_cursors_round_trip_and_are_opaque() -> None:
    assert decode_cursor(encode_cursor(9_223_372_036_854_775_807)) == 9_223_372_036_854_775_807
    assert encode_cursor(42) != "42"
