"""The fake Zendesk answers like the real API: contract-valid bodies, cursor export,
organization pagination, basic auth, idempotent ticket creation and the export limit."""

import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tensafe_ops.sandbox import zendesk_api
from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.world import World, WorldSize, advance, generate
from tests.contracts import ContractRecorder

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CREDENTIALS = {"email": "ops@tensafe.example", "token": "zd-test-token"}
AUTH = {
    "Authorization": "Basic "
    + base64.b64encode(b"ops@tensafe.example/token:zd-test-token").decode()
}
ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


def check(recorder: ContractRecorder) -> int:
    """Validate against the contract, whose paths are written without Zendesk's `.json`."""
    for exchange in recorder.exchanges:
        exchange.request.path = exchange.request.path.removesuffix(".json")
    return recorder.check()


def small_world() -> World:
    return generate(7, WorldSize(accounts=30, tickets=250, subscriptions=0, incidents=0), NOW)


async def fake(
    aiohttp_client: ClientFactory, world: World, **options: Any
) -> tuple[TestClient[Any, Any], ContractRecorder]:
    app = zendesk_api.make_app(world, Faults(), credentials=CREDENTIALS, **options)
    recorder = ContractRecorder("zendesk")
    recorder.attach(app)
    return await aiohttp_client(app), recorder


async def export_all(client: TestClient[Any, Any], query: str) -> tuple[list[dict[str, Any]], Any]:
    tickets: list[dict[str, Any]] = []
    url = f"/api/v2/incremental/tickets/cursor.json?{query}"
    while True:
        response = await client.get(url, headers=AUTH)
        assert response.status == 200
        body = await response.json()
        tickets += body["tickets"]
        if body["end_of_stream"]:
            return tickets, body
        url = f"/api/v2/incremental/tickets/cursor.json?cursor={body['after_cursor']}&per_page=100"


async def test_cursor_export_pages_through_every_ticket_once(aiohttp_client: ClientFactory) -> None:
    world = small_world()
    client, recorder = await fake(aiohttp_client, world)
    start = int((NOW - timedelta(days=90)).timestamp())
    tickets, last = await export_all(client, f"start_time={start}&per_page=100&include=metric_sets")
    assert sorted(t["id"] for t in tickets) == sorted(t["id"] for t in world.zendesk["tickets"])
    stamps = [(t["generated_timestamp"], t["id"]) for t in tickets]
    assert stamps == sorted(stamps)
    assert "per_page=100" in last["after_url"] and last["after_cursor"] in last["after_url"]
    assert check(recorder) == 3

    # The first page carries the metric sets of exactly its tickets.
    first = await (
        await client.get(
            f"/api/v2/incremental/tickets/cursor?start_time={start}&per_page=10"
            "&include=metric_sets",
            headers=AUTH,
        )
    ).json()
    assert {m["ticket_id"] for m in first["metric_sets"]} == {t["id"] for t in first["tickets"]}
    assert first["end_of_stream"] is False and first["before_cursor"]

    # Resuming from the last cursor after the world moved returns only what changed.
    advance(world, NOW + timedelta(minutes=30))
    changed, _ = await export_all(client, f"cursor={last['after_cursor']}")
    assert changed
    assert all(t["generated_timestamp"] > NOW.timestamp() - 1 for t in changed)
    nothing, body = await export_all(client, f"cursor={_last_cursor(world)}")
    assert nothing == [] and body["end_of_stream"] is True
    check(recorder)


def _last_cursor(world: World) -> str:
    newest = max(world.zendesk["tickets"], key=lambda t: (t["generated_timestamp"], t["id"]))
    return zendesk_api.encode_cursor((newest["generated_timestamp"], newest["id"]))


async def test_organizations_cursor_and_offset_pagination(aiohttp_client: ClientFactory) -> None:
    world = small_world()
    client, recorder = await fake(aiohttp_client, world)
    seen: list[int] = []
    url = "/api/v2/organizations.json?page[size]=7"
    while url:
        body = await (await client.get(url, headers=AUTH)).json()
        seen += [o["id"] for o in body["organizations"]]
        url = body["links"]["next"] and body["links"]["next"].split("://", 1)[1].split("/", 1)[1]
        url = f"/{url}" if url else ""
        assert body["meta"]["has_more"] == bool(url)
    assert seen == sorted(o["id"] for o in world.zendesk["organizations"])
    external = [o["external_id"] for o in world.zendesk["organizations"]]
    assert None in external  # unlinked orgs exist to exercise the join
    assert len({e for e in external if e}) == len([e for e in external if e]) - 1  # one duplicate

    offset = await (await client.get("/api/v2/organizations?per_page=100", headers=AUTH)).json()
    assert offset["count"] == len(world.zendesk["organizations"])
    assert check(recorder) >= 6


async def test_wrong_token_gets_zendesk_401(aiohttp_client: ClientFactory) -> None:
    client, _ = await fake(aiohttp_client, small_world())
    bad = {"Authorization": "Basic " + base64.b64encode(b"ops@tensafe.example/token:nope").decode()}
    response = await client.get("/api/v2/incremental/tickets/cursor.json?start_time=0", headers=bad)
    assert response.status == 401
    assert await response.json() == {"error": "Couldn't authenticate you"}
    assert (await client.get("/api/v2/organizations.json")).status == 401


async def test_create_ticket_is_idempotent_per_key(aiohttp_client: ClientFactory) -> None:
    world = small_world()
    client, recorder = await fake(aiohttp_client, world)
    count = len(world.zendesk["tickets"])
    body = {
        "ticket": {"subject": "Alert: GPU quota", "comment": {"body": "firing"}, "tags": ["alert"]}
    }
    headers = {**AUTH, "Idempotency-Key": "alert-group-1"}
    first = await client.post("/api/v2/tickets.json", json=body, headers=headers)
    assert first.status == 201 and first.headers["x-idempotency-lookup"] == "miss"
    again = await client.post("/api/v2/tickets", json=body, headers=headers)
    assert again.status == 201 and again.headers["x-idempotency-lookup"] == "hit"
    created = (await first.json())["ticket"]
    assert (await again.json())["ticket"]["id"] == created["id"]
    assert len(world.zendesk["tickets"]) == count + 1
    assert created["status"] == "new" and created["tags"] == ["alert"]

    other = {"ticket": {**body["ticket"], "subject": "something else"}}
    conflict = await client.post("/api/v2/tickets", json=other, headers=headers)
    assert conflict.status == 400
    assert (await conflict.json())["error"] == "IdempotentRequestError"
    assert len(world.zendesk["tickets"]) == count + 1

    shown = await client.get(f"/api/v2/tickets/{created['id']}.json", headers=AUTH)
    assert (await shown.json())["ticket"]["subject"] == "Alert: GPU quota"
    recorder.exchanges = [e for e in recorder.exchanges if e.response.status_code < 300]
    check(recorder)


async def test_a_created_ticket_is_next_in_the_export(aiohttp_client: ClientFactory) -> None:
    """One world: a ticket the webhook files is read back by the exporter's next export."""
    world = small_world()
    client, _ = await fake(aiohttp_client, world)
    _, caught_up = await export_all(client, "start_time=0&per_page=100")
    body = {"ticket": {"subject": "[info] NewCustomerSignup", "comment": {"body": "signed up"}}}
    created = await client.post("/api/v2/tickets.json", json=body, headers=AUTH)
    assert created.status == 201
    ticket_id = (await created.json())["ticket"]["id"]
    news, _ = await export_all(client, f"cursor={caught_up['after_cursor']}&per_page=100")
    assert [(t["id"], t["subject"], t["status"]) for t in news] == [
        (ticket_id, "[info] NewCustomerSignup", "new")
    ]
    assert news[0]["generated_timestamp"] == int(world.now.timestamp())


async def test_incremental_limit_answers_429_with_retry_after(
    aiohttp_client: ClientFactory,
) -> None:
    client, _ = await fake(aiohttp_client, small_world(), incremental_limit_per_minute=2)
    url = "/api/v2/incremental/tickets/cursor.json?start_time=0&per_page=5"
    assert (await client.get(url, headers=AUTH)).status == 200
    assert (await client.get(url, headers=AUTH)).status == 200
    limited = await client.get(url, headers=AUTH)
    assert limited.status == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert (await limited.json())["error"] == "TooManyRequests"
    # Other endpoints are not under the export limit.
    assert (await client.get("/api/v2/organizations.json", headers=AUTH)).status == 200
