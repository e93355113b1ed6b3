"""`GET /_sandbox/received` on every fake of a running sandbox: what each one was sent,
readable from outside, without the fake's credentials and untouched by injected faults."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tensafe_ops.sandbox.received import parse_since
from tensafe_ops.sandbox.server import (
    DEMO_ROUTING_KEY,
    DEMO_SLACK_WEBHOOKS,
    RunningWorld,
    start_world,
)
from tensafe_ops.sandbox.world import WorldSize, generate

# One request per fake, as a client of that API would send it (credentials left out on
# purpose where the fake needs them: a refused request is something it received too).
REQUESTS: dict[str, tuple[str, str, Any, int]] = {
    "zendesk": ("POST", "/api/v2/tickets.json", {"ticket": {"subject": "x"}}, 401),
    "stripe": ("GET", "/v1/customers?limit=3", None, 401),
    "pagerduty": ("GET", "/incidents?limit=5", None, 401),
    "pagerduty_events": (
        "POST",
        "/v2/enqueue",
        {"routing_key": DEMO_ROUTING_KEY, "event_action": "resolve", "dedup_key": "nothing"},
        202,
    ),
    "slack": ("POST", f"/services/{DEMO_SLACK_WEBHOOKS['alerts']}", {"text": "hello"}, 200),
    "product": ("GET", "/metrics", None, 200),
}


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[RunningWorld]:
    world = generate(3, WorldSize(accounts=4, tickets=6, subscriptions=2, incidents=3))
    running = await start_world(world, usage_db_url=f"sqlite+aiosqlite:///{tmp_path / 'u.db'}")
    yield running
    await running.stop()


async def received(
    session: aiohttp.ClientSession, base: str, **query: str
) -> tuple[int, dict[str, Any]]:
    async with session.get(f"{base}/_sandbox/received", params=query) as response:
        body: dict[str, Any] = await response.json()
        return response.status, body


def test_every_fake_of_the_sandbox_is_covered() -> None:
    # a fake added to the sandbox without a line here would go unchecked
    assert set(REQUESTS) == {
        "zendesk",
        "stripe",
        "pagerduty",
        "pagerduty_events",
        "slack",
        "product",
    }


async def test_each_fake_lists_what_it_received(sandbox: RunningWorld) -> None:
    assert set(sandbox.urls) == set(REQUESTS)
    async with aiohttp.ClientSession() as session:
        before = {
            name: (await received(session, url))[1]["now"] for name, url in sandbox.urls.items()
        }
        for name, (method, path, body, status) in REQUESTS.items():
            async with session.request(method, sandbox.urls[name] + path, json=body) as answer:
                assert answer.status == status, (name, await answer.text())
        for name, (method, path, body, status) in REQUESTS.items():
            code, listing = await received(session, sandbox.urls[name], since=before[name])
            assert code == 200
            assert [
                (e["method"], e["path"], e["status"], e["body"]) for e in listing["received"]
            ] == [(method, path, status, body)], name


async def test_since_method_and_bad_input(sandbox: RunningWorld) -> None:
    events = sandbox.urls["pagerduty_events"]
    async with aiohttp.ClientSession() as session:
        _, first = await received(session, events)
        assert first["received"] == []
        await session.post(f"{events}/v2/enqueue", data=b"{not json")
        _, after_one = await received(session, events)
        assert [e["status"] for e in after_one["received"]] == [400]
        assert after_one["received"][0]["body"] == "{not json"  # kept as text
        await asyncio.sleep(0.01)
        cursor = after_one["now"]
        await session.post(f"{events}/v2/enqueue", json={"event_action": "trigger"})
        _, newer = await received(session, events, since=cursor)
        assert len(newer["received"]) == 1  # only what came after the previous answer
        _, by_unix = await received(session, events, since=str(parse_since(cursor)))
        assert by_unix["received"] == newer["received"]  # Unix seconds mean the same
        _, none = await received(session, events, since=str(time.time() + 60))
        assert none["received"] == []
        _, gets = await received(session, events, method="GET")
        assert gets["received"] == []  # its own listing is never recorded
        for bad in ("yesterday", "2026-13-01T00:00:00Z"):
            status, body = await received(session, events, since=bad)
            assert status == 400 and body["error"] == "invalid since"


async def test_injected_faults_are_recorded_but_never_hit_the_listing(
    sandbox: RunningWorld,
) -> None:
    pagerduty = sandbox.urls["pagerduty"]
    sandbox.faults["pagerduty"].queue("503", "503")
    async with aiohttp.ClientSession() as session:
        status, _ = await received(session, pagerduty)  # does not consume a fault
        assert status == 200
        async with session.get(f"{pagerduty}/services") as answer:
            assert answer.status == 503
        status, listing = await received(session, pagerduty)
        assert status == 200
        assert [(e["path"], e["status"]) for e in listing["received"]] == [("/services", 503)]
    assert list(sandbox.faults["pagerduty"].queued) == ["503"]
