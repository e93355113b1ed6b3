"""The fake Stripe API answers like Stripe: auth, list pagination, filters, expand, errors."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tensafe_ops.sandbox import stripe_api, stripe_world
from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.world import World, WorldSize, advance, generate
from tests.contracts import ContractRecorder

KEY = "sk_test_fake_1234567890"
AUTH = {"Authorization": f"Bearer {KEY}"}
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
SIZE = WorldSize(accounts=60, tickets=0, subscriptions=60, incidents=0)


@pytest.fixture
def world() -> World:
    return generate(5, SIZE, NOW)


@pytest.fixture
def recorder() -> ContractRecorder:
    return ContractRecorder("stripe")


@pytest.fixture
async def client(
    aiohttp_client: Any, world: World, recorder: ContractRecorder
) -> tuple[TestClient[Any, Any], Faults]:
    faults = Faults(retry_after=2)
    app = stripe_api.make_app(world, faults, credentials={"api_key": KEY})
    recorder.attach(app)
    return await aiohttp_client(app), faults


async def get(client: TestClient[Any, Any], path: str, **params: Any) -> tuple[int, Any]:
    response = await client.get(path, params=params, headers=AUTH)
    return response.status, await response.json()


async def test_auth_errors_use_stripes_error_object(client: Any) -> None:
    http, _ = client
    missing = await http.get("/v1/customers")
    assert missing.status == 401
    body = await missing.json()
    assert body["error"]["type"] == "invalid_request_error"
    wrong = await http.get("/v1/customers", headers={"Authorization": "Bearer sk_test_nope_9999"})
    message = (await wrong.json())["error"]["message"]
    assert wrong.status == 401 and "sk_test_nope_9999" not in message and message.endswith("9999")


async def test_pagination_walks_every_object_once(client: Any, recorder: ContractRecorder) -> None:
    http, _ = client
    status, first = await get(http, "/v1/customers")
    assert status == 200 and first["object"] == "list" and first["url"] == "/v1/customers"
    assert len(first["data"]) == 10 and first["has_more"]  # default limit
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 25}
    while True:
        _, page = await get(http, "/v1/customers", **params)
        seen += [c["id"] for c in page["data"]]
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    assert len(seen) == len(set(seen)) == 60
    _, newer = await get(http, "/v1/customers", limit=5, ending_before=seen[10])
    assert [c["id"] for c in newer["data"]] == seen[5:10] and newer["has_more"]
    for bad in (0, 101):
        status, body = await get(http, "/v1/customers", limit=bad)
        assert status == 400 and body["error"]["param"] == "limit"
    status, body = await get(http, "/v1/customers", starting_after="cus_missing")
    assert status == 400 and body["error"]["code"] == "resource_missing"
    recorder.check()


async def test_subscription_status_filter_and_expand(
    client: Any, world: World, recorder: ContractRecorder
) -> None:
    http, _ = client
    _, default = await get(http, "/v1/subscriptions", limit=100)
    _, every = await get(http, "/v1/subscriptions", limit=100, status="all")
    assert all(s["status"] != "canceled" for s in default["data"])
    assert len(every["data"]) == len(world.stripe["subscriptions"]) > len(default["data"])
    with_discount = [s for s in every["data"] if s["discounts"]]
    assert with_discount and all(isinstance(d, str) for s in with_discount for d in s["discounts"])
    expand = {"expand[0]": "data.discounts", "expand[1]": "data.discounts.source.coupon"}
    _, expanded = await get(http, "/v1/subscriptions", limit=100, status="all", **expand)
    discounts = [d for s in expanded["data"] for d in s["discounts"]]
    assert discounts and all(d["object"] == "discount" for d in discounts)
    assert all(d["source"]["coupon"]["object"] == "coupon" for d in discounts)
    item = expanded["data"][0]["items"]["data"][0]
    assert "current_period_end" in item and "tiers" not in item["price"]
    recorder.check()


async def test_expandable_fields_are_ids_unless_the_request_expands_them(
    client: Any, world: World, recorder: ContractRecorder
) -> None:
    http, _ = client
    stored = {s["id"]: s for s in world.stripe["subscriptions"]}
    _, plain = await get(http, "/v1/subscriptions", limit=100, status="all")
    held = [(s, i) for s in plain["data"] for i in s["items"]["data"] if i["discounts"]]
    assert held, "the generated world puts discounts on some items"
    assert all(isinstance(d, str) for _, i in held for d in i["discounts"])
    assert all(isinstance(s.get("latest_invoice"), str | None) for s in plain["data"])
    assert all("discount" not in s for s in plain["data"])  # removed in 2025-03-31.basil
    # expanding the subscription's discounts leaves the items' discounts alone
    _, top = await get(http, "/v1/subscriptions", limit=100, status="all", expand="data.discounts")
    assert all(isinstance(d, str) for s in top["data"] for i in s["items"]["data"]
               for d in i["discounts"])  # fmt: skip
    assert all(isinstance(d["source"]["coupon"], str) for s in top["data"] for d in s["discounts"])
    # four levels reach the items' discounts; their coupons (six levels) stay ids
    expand = {"expand[0]": "data.items.data.discounts", "expand[1]": "data.latest_invoice"}
    _, deep = await get(http, "/v1/subscriptions", limit=100, status="all", **expand)
    items = [i for s in deep["data"] for i in s["items"]["data"] if i["discounts"]]
    assert items and all(d["object"] == "discount" for i in items for d in i["discounts"])
    assert all(isinstance(d["source"]["coupon"], str) for i in items for d in i["discounts"])
    sub = next(s for s in deep["data"] if s.get("latest_invoice"))
    assert sub["latest_invoice"]["object"] == "invoice"
    assert stored[sub["id"]]["latest_invoice"] == sub["latest_invoice"]["id"]
    assert all("tiers" not in i["price"] for s in deep["data"] for i in s["items"]["data"])
    recorder.check()


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        (
            "data.items.data.discounts.source.coupon",
            "property_expansion_max_depth",
            "You cannot expand more than 4 levels of a property. "
            "Property: data.items.data.discounts.source.coupon",
        ),
        ("discounts", None, "This property cannot be expanded (discounts)."),
        ("data.status", None, "This property cannot be expanded (data.status)."),
    ],
)
async def test_expand_paths_stripe_refuses(
    client: Any, path: str, code: str | None, message: str
) -> None:
    http, _ = client
    status, body = await get(http, "/v1/subscriptions", expand=path)
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == message and body["error"]["param"] == "expand"
    assert body["error"].get("code") == code


async def test_coupon_and_price_includable_fields(client: Any, world: World) -> None:
    http, _ = client
    restricted = next(c for c in world.stripe["coupons"] if c.get("applies_to"))
    status, plain = await get(http, f"/v1/coupons/{restricted['id']}")
    assert status == 200 and plain["id"] == restricted["id"] and "applies_to" not in plain
    _, full = await get(http, f"/v1/coupons/{restricted['id']}", expand="applies_to")
    assert full["applies_to"] == restricted["applies_to"]
    status, missing = await get(http, "/v1/coupons/NO_SUCH")
    assert status == 404 and missing["error"]["code"] == "resource_missing"
    tiered = next(p for p in world.stripe["prices"] if p.get("tiers"))
    _, price = await get(http, f"/v1/prices/{tiered['id']}")
    assert "tiers" not in price
    _, price = await get(http, f"/v1/prices/{tiered['id']}", expand="tiers")
    assert price["tiers"] == tiered["tiers"]


async def test_event_payloads_carry_ids(client: Any, world: World) -> None:
    http, _ = client
    sub = next(s for s in world.stripe["subscriptions"] if s["status"] == "active")
    coupon = next(c for c in world.stripe["coupons"] if c["id"] == "LAUNCH20")
    stripe_world.add_item_discount(world, sub, sub["items"]["data"][0], coupon, TS + 60)
    status, _ = await get(http, "/v1/events", limit=1, expand="data.object")
    assert status == 400  # an event's payload cannot be expanded
    _, listed = await get(http, "/v1/events", limit=1)
    event = listed["data"][0]
    assert event["type"] == "customer.subscription.updated"
    item = event["data"]["object"]["items"]["data"][0]
    assert item["discounts"] and all(isinstance(d, str) for d in item["discounts"])
    previous = event["data"]["previous_attributes"]["items"]["data"][0]
    assert all(isinstance(d, str) for d in previous["discounts"])


async def test_events_filters_cursor_and_retention(
    client: Any, world: World, recorder: ContractRecorder
) -> None:
    http, _ = client
    advance(world, NOW + timedelta(hours=6))
    events = world.stripe["events"]
    assert len(events) > 20
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and [e["created"] for e in events] == sorted(
        e["created"] for e in events
    )
    _, failed = await get(http, "/v1/events", limit=100, **{"types[0]": "invoice.payment_failed"})
    assert failed["data"] and {e["type"] for e in failed["data"]} == {"invoice.payment_failed"}
    _, newer = await get(http, "/v1/events", limit=100, ending_before=ids[-6])
    assert [e["id"] for e in newer["data"]] == list(reversed(ids[-5:]))
    updated = next(e for e in events if e["type"] == "customer.subscription.updated")
    assert "previous_attributes" in updated["data"]
    advance(world, NOW + timedelta(days=40))  # older than 30 days: gone
    status, body = await get(http, "/v1/events", ending_before=ids[0])
    assert status == 400 and body["error"]["code"] == "resource_missing"
    recorder.check()


async def test_faults_answer_with_stripe_errors(client: Any) -> None:
    http, faults = client
    faults.queue("429", "500")
    limited = await http.get("/v1/customers", headers=AUTH)
    assert limited.status == 429 and limited.headers["Retry-After"] == "2"
    assert (await limited.json())["error"]["code"] == "rate_limit"
    broken = await http.get("/v1/customers", headers=AUTH)
    assert broken.status == 500 and (await broken.json())["error"]["type"] == "api_error"


def test_world_is_deterministic_and_advance_makes_changes() -> None:
    one, two = generate(9, SIZE, NOW), generate(9, SIZE, NOW)
    assert one.stripe == two.stripe
    statuses = {s["status"] for s in one.stripe["subscriptions"]}
    assert {"active", "past_due", "trialing", "canceled"} <= statuses
    accounts = [c["metadata"].get("account_id") for c in one.stripe["customers"]]
    assert accounts.count(None) == 2 and len(accounts) - len(set(accounts)) == 2  # None x2, 1 dup
    advance(one, NOW + timedelta(hours=12))
    kinds = {e["type"] for e in one.stripe["events"]}
    assert {"customer.subscription.updated", "invoice.payment_failed"} <= kinds
