"""The fake Events API v2: what gets paged, deduplicated, rejected and throttled."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tensafe_ops.sandbox import pagerduty_events_api as events
from tensafe_ops.sandbox.faults import Faults
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
