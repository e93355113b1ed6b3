"""The simulated PagerDuty world and its fake REST API, spoken to over HTTP."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tensafe_ops.sandbox import pagerduty_api
from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.pagerduty_world import parse
from tensafe_ops.sandbox.world import World, WorldSize, advance, generate
from tests.contracts import ContractRecorder

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TOKEN = "pd-fake-token"
AUTH = {
    "Authorization": f"Token token={TOKEN}",
    "Accept": "application/vnd.pagerduty+json;version=2",
}
ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def small_world(incidents: int = 300) -> World:
    return generate(11, WorldSize(accounts=3, tickets=0, subscriptions=0, incidents=incidents), NOW)


def is_open(incident: dict[str, Any]) -> bool:
    return bool(incident["status"] != "resolved")


@pytest.fixture
def recorder() -> ContractRecorder:
    return ContractRecorder("pagerduty-rest")


@pytest.fixture
def client_for(
    aiohttp_client: ClientFactory, recorder: ContractRecorder
) -> Callable[..., Awaitable[TestClient[Any, Any]]]:
    async def make(world: World, faults: Faults | None = None, **kw: Any) -> TestClient[Any, Any]:
        app = pagerduty_api.make_app(world, faults or Faults(), credentials={"token": TOKEN}, **kw)
        recorder.attach(app)
        return await aiohttp_client(app)

    return make


def test_world_is_deterministic_and_keeps_a_month_old_page_open() -> None:
    one, two = small_world(), small_world()
    assert one.pagerduty == two.pagerduty
    incidents = one.pagerduty["incidents"]
    assert len(incidents) == 300
    assert {i["status"] for i in incidents} == {"triggered", "acknowledged", "resolved"}
    assert any(is_open(i) and NOW - parse(i["created_at"]) > timedelta(days=30) for i in incidents)
    for incident in incidents:
        if incident["status"] == "acknowledged":
            assert incident["acknowledgements"]
        if incident["status"] == "resolved":
            assert parse(incident["resolved_at"]) >= parse(incident["created_at"])
            assert incident["acknowledgements"] == []
    levels = {
        (o["escalation_policy"]["id"], o["escalation_level"]) for o in one.pagerduty["oncalls"]
    }
    assert len(levels) == 4 * 3


def test_advance_pages_acknowledges_resolves_and_rotates() -> None:
    world = small_world()
    before = {i["id"]: dict(i) for i in world.pagerduty["incidents"]}
    level_one = [o["start"] for o in world.pagerduty["oncalls"] if o["escalation_level"] == 1]
    advance(world, NOW + timedelta(days=2))
    after = world.pagerduty["incidents"]
    assert len(after) > len(before)
    changed = [i for i in after if i["id"] in before and i["status"] != before[i["id"]]["status"]]
    assert changed
    assert all(parse(i["updated_at"]) > NOW for i in changed)
    rotated = [o["start"] for o in world.pagerduty["oncalls"] if o["escalation_level"] == 1]
    assert rotated != level_one
    assert all(parse(o["end"]) > world.now for o in world.pagerduty["oncalls"])


async def test_default_window_misses_old_open_incidents_unlike_date_range_all(
    client_for: Callable[..., Awaitable[TestClient[Any, Any]]], recorder: ContractRecorder
) -> None:
    world = small_world()
    client = await client_for(world)
    query = "statuses[]=triggered&statuses[]=acknowledged&limit=100&total=true"
    default = await (await client.get(f"/incidents?{query}", headers=AUTH)).json()
    everything = await (await client.get(f"/incidents?{query}&date_range=all", headers=AUTH)).json()
    expected = sum(1 for i in world.pagerduty["incidents"] if is_open(i))
    assert everything["total"] == expected == len(everything["incidents"])
    assert default["total"] < expected
    assert all(NOW - parse(i["created_at"]) <= timedelta(days=30) for i in default["incidents"])
    assert recorder.check() == 2


async def test_classic_pagination_and_the_offset_cap(
    client_for: Callable[..., Awaitable[TestClient[Any, Any]]], recorder: ContractRecorder
) -> None:
    world = small_world()
    client = await client_for(world, offset_cap=250)
    seen: list[str] = []
    offset, more = 0, True
    while more:
        response = await client.get(
            f"/incidents?date_range=all&limit=100&offset={offset}", headers=AUTH
        )
        if response.status == 400:
            break
        body = await response.json()
        assert body["limit"] == 100 and body["offset"] == offset and body["total"] is None
        seen += [i["id"] for i in body["incidents"]]
        offset, more = offset + len(body["incidents"]), body["more"]
    assert len(seen) == len(set(seen)) == 200
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == 2001 and error["message"] == "Invalid Input Provided"
    assert "250" in error["errors"][0]
    last = await client.get("/incidents?date_range=all&limit=50&offset=200", headers=AUTH)
    assert last.status == 200 and (await last.json())["more"] is True
    huge = await client.get("/incidents?date_range=all&limit=500", headers=AUTH)
    assert (await huge.json())["limit"] == 100
    recorder.check()


async def test_filters_validation_and_auth(
    client_for: Callable[..., Awaitable[TestClient[Any, Any]]], recorder: ContractRecorder
) -> None:
    world = small_world()
    client = await client_for(world)
    high = await client.get("/incidents?date_range=all&urgencies[]=high&limit=100", headers=AUTH)
    assert {i["urgency"] for i in (await high.json())["incidents"]} == {"high"}
    bad = await client.get("/incidents?statuses[]=open", headers=AUTH)
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == 2001
    denied = await client.get("/incidents", headers={"Authorization": "Token token=nope"})
    assert denied.status == 401
    assert (await denied.json()) == {"error": {"message": "Authentication failed", "code": 2006}}
    missing = await client.get("/services/PNOPE00", headers=AUTH)
    assert missing.status == 404
    services = await (await client.get("/services", headers=AUTH)).json()
    one = await client.get(f"/services/{services['services'][0]['id']}", headers=AUTH)
    assert (await one.json())["service"] == services["services"][0]
    recorder.check()


async def test_oncalls_now_and_by_policy(
    client_for: Callable[..., Awaitable[TestClient[Any, Any]]], recorder: ContractRecorder
) -> None:
    world = small_world()
    client = await client_for(world)
    body = await (await client.get("/oncalls", headers=AUTH)).json()
    assert len(body["oncalls"]) == 12
    policy = body["oncalls"][0]["escalation_policy"]["id"]
    filtered = await client.get(
        f"/oncalls?escalation_policy_ids[]={policy}&earliest=true", headers=AUTH
    )
    levels = sorted(o["escalation_level"] for o in (await filtered.json())["oncalls"])
    assert levels == [1, 2, 3]
    later = (NOW + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    future = await client.get(f"/oncalls?since={later}", headers=AUTH)
    assert (await future.json())["oncalls"] == []
    recorder.check()


async def test_injected_429_uses_pagerdutys_error_body(
    client_for: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    faults = Faults(retry_after=7)
    client = await client_for(small_world(), faults)
    faults.queue("429", "503")
    limited = await client.get("/incidents", headers=AUTH)
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "7"
    assert limited.headers["ratelimit-reset"] == "7"
    assert (await limited.json())["error"]["code"] == 2020
    failed = await client.get("/incidents", headers=AUTH)
    assert failed.status == 503 and "message" in (await failed.json())["error"]
    assert (await client.get("/incidents", headers=AUTH)).status == 200
