"""The fake Events API v2: what gets paged, deduplicated, rejected and throttled, and the
incidents it opens in the PagerDuty world the REST fake serves."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tensafe_ops.sandbox import pagerduty_api, pagerduty_world
from tensafe_ops.sandbox import pagerduty_events_api as events
from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.world import World, WorldSize, advance, generate
from tests.contracts import ContractRecorder

ROUTING_KEY = "e93facc04764012d7bfb002500d5d1a6"
ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def trigger(dedup_key: str | None = "db/disk", **payload: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "payload": {"summary": "Disk 99% on db-1", "source": "db-1", "severity": "critical"}
        | payload,
    }
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    return event


def action(name: str, dedup_key: str = "db/disk") -> dict[str, Any]:
    return {"routing_key": ROUTING_KEY, "event_action": name, "dedup_key": dedup_key}


@pytest.fixture
def recorder() -> ContractRecorder:
    return ContractRecorder("pagerduty-events")


@pytest.fixture
def monotonic() -> ManualClock:
    return ManualClock()


@pytest.fixture
def faults() -> Faults:
    return Faults(retry_after=0)


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory,
    recorder: ContractRecorder,
    monotonic: ManualClock,
    faults: Faults,
) -> TestClient[Any, Any]:
    app = events.make_app(faults, routing_keys={ROUTING_KEY}, monotonic=monotonic)
    recorder.attach(app)
    return await aiohttp_client(app)


def state_of(client: TestClient[Any, Any]) -> events.EventsState:
    assert client.app is not None
    state: events.EventsState = client.app[events.EVENTS_STATE_KEY]
    return state


def status_of(client: TestClient[Any, Any], dedup_key: str) -> tuple[str, int, int] | None:
    alert = state_of(client).alert(dedup_key)
    return None if alert is None else (alert.status, alert.triggers, alert.openings)


async def test_trigger_dedup_acknowledge_resolve_and_reopen(
    client: TestClient[Any, Any], recorder: ContractRecorder
) -> None:
    first = await client.post("/v2/enqueue", json=trigger())
    assert first.status == 202
    assert await first.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "db/disk",
    }
    await client.post("/v2/enqueue", json=trigger(summary="Disk 100% on db-1"))
    assert status_of(client, "db/disk") == ("triggered", 2, 1)
    alert = state_of(client).alert("db/disk")
    assert alert is not None and alert.summary == "Disk 100% on db-1"

    assert (await client.post("/v2/enqueue", json=action("acknowledge"))).status == 202
    assert status_of(client, "db/disk") == ("acknowledged", 2, 1)
    assert (await client.post("/v2/enqueue", json=action("resolve"))).status == 202
    assert status_of(client, "db/disk") == ("resolved", 2, 1)
    await client.post("/v2/enqueue", json=trigger())
    assert status_of(client, "db/disk") == ("triggered", 3, 2)
    assert len(state_of(client).events) == 5
    assert recorder.check() == 5


async def test_trigger_without_dedup_key_gets_one_and_unknown_resolve_is_ignored(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post("/v2/enqueue", json=trigger(dedup_key=None))
    dedup_key = (await response.json())["dedup_key"]
    assert dedup_key and state_of(client).alert(dedup_key) is not None
    ignored = await client.post("/v2/enqueue", json=action("resolve", "never-triggered"))
    assert ignored.status == 202
    assert state_of(client).alert("never-triggered") is None


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (trigger() | {"routing_key": "not-a-configured-key"}, "Invalid routing key"),
        ({k: v for k, v in trigger().items() if k != "routing_key"}, "'routing_key'"),
        (trigger() | {"event_action": "snooze"}, "'event_action'"),
        (trigger(summary="x" * 1025), "'payload.summary'"),
        (trigger(summary=""), "'payload.summary'"),
        (trigger(source=None), "'payload.source'"),
        (trigger(severity="fatal"), "'payload.severity'"),
        ({k: v for k, v in trigger().items() if k != "payload"}, "'payload'"),
        ({"routing_key": ROUTING_KEY, "event_action": "resolve"}, "'dedup_key'"),
    ],
)
async def test_invalid_events_are_rejected_with_400(
    client: TestClient[Any, Any], recorder: ContractRecorder, event: dict[str, Any], error: str
) -> None:
    response = await client.post("/v2/enqueue", json=event)
    assert response.status == 400
    body = await response.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert any(error in detail for detail in body["errors"])
    assert state_of(client).events == [] and state_of(client).rejected == 1
    assert recorder.check() == 1


async def test_summary_of_exactly_1024_characters_is_accepted(client: TestClient[Any, Any]) -> None:
    assert (await client.post("/v2/enqueue", json=trigger(summary="x" * 1024))).status == 202


async def test_unparseable_body_is_an_unrecognized_object(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/v2/enqueue", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["errors"] == ["JSON parse error"]


async def test_120_events_per_minute_per_routing_key(
    client: TestClient[Any, Any], monotonic: ManualClock, recorder: ContractRecorder
) -> None:
    for index in range(events.RATE_LIMIT_PER_MINUTE):
        response = await client.post("/v2/enqueue", json=trigger(f"alert-{index}"))
        assert response.status == 202
    throttled = await client.post("/v2/enqueue", json=trigger("one-too-many"))
    assert throttled.status == 429
    assert (await throttled.json())["status"] == "throttle event"
    assert state_of(client).alert("one-too-many") is None
    monotonic.now += 60.5
    assert (await client.post("/v2/enqueue", json=trigger("one-too-many"))).status == 202
    assert recorder.check() == events.RATE_LIMIT_PER_MINUTE + 2


async def test_injected_faults_use_the_events_error_shape(
    client: TestClient[Any, Any], faults: Faults
) -> None:
    faults.queue("500", "429")
    failed = await client.post("/v2/enqueue", json=trigger())
    assert failed.status == 500
    assert set(await failed.json()) == {"status", "message"}
    limited = await client.post("/v2/enqueue", json=trigger())
    assert limited.status == 429
    assert state_of(client).events == []
    assert (await client.post("/v2/enqueue", json=trigger())).status == 202


# --- One world: pages are incidents of the PagerDuty world the REST fake serves ----------

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
REST_TOKEN = "pd-rest-token"
REST_AUTH = {"Authorization": f"Token token={REST_TOKEN}"}


class OneWorld:
    def __init__(self, world: World, events: TestClient[Any, Any], rest: TestClient[Any, Any]):
        self.world, self.events, self.rest = world, events, rest

    async def send(self, event: dict[str, Any]) -> None:
        response = await self.events.post("/v2/enqueue", json=event)
        assert response.status == 202, await response.text()

    async def incidents(self, dedup_key: str) -> list[dict[str, Any]]:
        """The REST API's incidents for this dedup key (any age, any status), oldest first."""
        response = await self.rest.get(
            "/incidents", params={"date_range": "all", "limit": "100"}, headers=REST_AUTH
        )
        assert response.status == 200
        body = await response.json()
        return [i for i in body["incidents"] if i["incident_key"] == dedup_key]


@pytest.fixture
async def one_world(aiohttp_client: ClientFactory) -> AsyncIterator[OneWorld]:
    world = generate(5, WorldSize(accounts=3, tickets=0, subscriptions=0, incidents=20), NOW)
    rest_recorder = ContractRecorder("pagerduty-rest")
    rest_app = pagerduty_api.make_app(world, Faults(), credentials={"token": REST_TOKEN})
    rest_recorder.attach(rest_app)
    events_app = events.make_app(Faults(), routing_keys={ROUTING_KEY}, world=world)
    shared = OneWorld(world, await aiohttp_client(events_app), await aiohttp_client(rest_app))
    yield shared
    rest_recorder.check()  # every incident the events made is a valid REST incident


async def test_a_page_is_an_incident_of_the_rest_api(one_world: OneWorld) -> None:
    service = pagerduty_world.events_service(one_world.world, ROUTING_KEY)
    assert service is not None and service["name"] == "Alertmanager (tensafe-ops)"
    assert service["integrations"][0]["integration_key"] == ROUTING_KEY
    known = len(one_world.world.pagerduty["incidents"])

    await one_world.send(trigger("api/down", summary="TenSafe API down"))
    [incident] = await one_world.incidents("api/down")
    assert incident["status"] == "triggered"
    assert incident["title"] == "TenSafe API down"
    assert incident["urgency"] == "high"  # critical, on a severity-based service
    assert incident["service"]["id"] == service["id"]
    assert incident["created_at"] == "2026-11-27T12:00:00Z"  # the world's clock
    policy = service["escalation_policy"]["id"]
    [level_one] = [
        o
        for o in one_world.world.pagerduty["oncalls"]
        if o["escalation_policy"]["id"] == policy and o["escalation_level"] == 1
    ]
    assert incident["assignments"][0]["assignee"]["id"] == level_one["user"]["id"]
    assert incident["incident_number"] == known + 1

    await one_world.send(trigger("api/down", summary="TenSafe API still down"))
    [same] = await one_world.incidents("api/down")  # deduplicated into the open incident
    assert same["id"] == incident["id"] and same["title"] == "TenSafe API down"

    await one_world.send(action("acknowledge", "api/down"))
    [acked] = await one_world.incidents("api/down")
    assert acked["status"] == "acknowledged"
    assert acked["acknowledgements"][0]["acknowledger"]["type"] == "service_reference"

    await one_world.send(action("resolve", "api/down"))
    [resolved] = await one_world.incidents("api/down")
    assert resolved["status"] == "resolved" and resolved["resolved_at"] == "2026-11-27T12:00:00Z"

    await one_world.send(trigger("api/down"))  # fires again: a new incident
    first, second = await one_world.incidents("api/down")
    assert (first["status"], second["status"]) == ("resolved", "triggered")
    assert second["id"] != first["id"]
    alert = state_of(one_world.events).alert("api/down")
    assert alert is not None and (alert.triggers, alert.openings) == (3, 2)


async def test_severity_sets_urgency_and_unknown_keys_change_nothing(one_world: OneWorld) -> None:
    await one_world.send(trigger("disk", severity="warning"))
    [incident] = await one_world.incidents("disk")
    assert incident["urgency"] == "low"
    before = [dict(i) for i in one_world.world.pagerduty["incidents"]]
    await one_world.send(action("resolve", "never-paged"))
    await one_world.send(action("acknowledge", "never-paged"))
    assert one_world.world.pagerduty["incidents"] == before


async def test_a_responder_resolving_in_the_world_closes_the_alert(one_world: OneWorld) -> None:
    await one_world.send(trigger("queue"))
    [incident] = await one_world.incidents("queue")
    responder = one_world.world.pagerduty["users"][0]
    live = next(i for i in one_world.world.pagerduty["incidents"] if i["id"] == incident["id"])
    pagerduty_world.resolve(live, responder, NOW)
    assert state_of(one_world.events).alert("queue").status == "resolved"  # type: ignore[union-attr]
    await one_world.send(action("acknowledge", "queue"))  # nothing open to acknowledge
    assert [i["status"] for i in await one_world.incidents("queue")] == ["resolved"]
    before = len(one_world.world.pagerduty["incidents"])
    advance(one_world.world, NOW + timedelta(days=30))  # the simulation numbers incidents too
    assert len(one_world.world.pagerduty["incidents"]) > before
    await one_world.send(trigger("queue"))
    assert [i["status"] for i in await one_world.incidents("queue")] == ["resolved", "triggered"]
    incidents = one_world.world.pagerduty["incidents"]
    assert len({i["id"] for i in incidents}) == len({i["incident_number"] for i in incidents})
    assert len({i["incident_number"] for i in incidents}) == len(incidents)
    newest = (await one_world.incidents("queue"))[-1]
    assert newest["incident_number"] == max(i["incident_number"] for i in incidents)


def test_the_simulation_invents_no_incident_on_the_paged_service() -> None:
    world = generate(9, WorldSize(accounts=3, tickets=0, subscriptions=0, incidents=50), NOW)
    service = pagerduty_world.add_events_service(world, ROUTING_KEY)
    assert pagerduty_world.add_events_service(world, ROUTING_KEY) is service  # once per key
    before = len(world.pagerduty["incidents"])
    for day in range(1, 31):
        advance(world, NOW + timedelta(days=day))
    created = world.pagerduty["incidents"][before:]
    assert len(created) > 10
    assert all(i["service"]["id"] != service["id"] for i in created)


def test_a_world_without_pagerduty_gets_a_directory_for_the_paged_service() -> None:
    world = World(now=NOW)
    service = pagerduty_world.add_events_service(world, ROUTING_KEY)
    assert world.pagerduty["users"] and world.pagerduty["escalation_policies"]
    assert world.pagerduty["services"] == [service] and world.pagerduty["incidents"] == []
