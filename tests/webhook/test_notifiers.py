"""Each notifier against its fake over real HTTP: what reaches the destination, and how
every kind of answer becomes an Outcome (ok / retryable / dead, error kept, no secrets)."""

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from tensafe_ops.sandbox import pagerduty_events_api, slack_api, zendesk_api
from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.world import World, WorldSize, generate
from tests.contracts import ContractRecorder
from tests.webhook.alert_factory import HIGH_ERROR_RATE, alert
from webhook.messages import pagerduty_event, slack_message, zendesk_ticket
from webhook.notifiers import PagerDutyNotifier, SlackNotifier, ZendeskNotifier
from webhook.outbox import Delivery, Target
from webhook.targets import PagerDutyDestination, SlackDestination, ZendeskDestination

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
WEBHOOK = "T0001/B0001/slack-webhook-secret"
ROUTING_KEY = "R0UT1NGKEY0000000000000000000001"
ZENDESK_TOKEN = "zendesk-api-token-secret"
CREATED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def delivery(
    target: Target, payload: dict[str, Any], *, destination: str = "main", key: str = "k1"
) -> Delivery:
    return Delivery(
        id=1,
        target=target,
        destination=destination,
        payload=payload,
        idempotency_key=key,
        attempts=0,
        created_at=CREATED,
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def faults() -> Faults:
    return Faults(retry_after=3, timeout_seconds=2)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- Slack ---------------------------------------------------------------------------


@pytest.fixture
async def slack_server(aiohttp_server: ServerFactory, faults: Faults) -> TestServer:
    inbox = slack_api.SlackInbox(webhooks={WEBHOOK})
    return await aiohttp_server(slack_api.make_app(faults, inbox=inbox))


def slack_notifier(
    session: aiohttp.ClientSession, url: str, *, timeout: float = 5.0
) -> SlackNotifier:
    destinations = {"main": SlackDestination(webhook_url=SecretStr(url), channel=None)}
    return SlackNotifier(session, destinations, timeout=timeout)


async def test_slack_message_is_posted(
    session: aiohttp.ClientSession, slack_server: TestServer
) -> None:
    notifier = slack_notifier(session, str(slack_server.make_url(f"/services/{WEBHOOK}")))
    message = slack_message(HIGH_ERROR_RATE, None)

    outcome = await notifier.send(delivery("slack", message))

    assert (outcome.ok, outcome.status) == (True, 200)
    inbox = slack_server.app[slack_api.SLACK_INBOX_KEY]
    assert inbox.for_webhook(WEBHOOK) == [message]


async def test_slack_4xx_is_permanent_with_slack_error_and_no_secret(
    session: aiohttp.ClientSession, slack_server: TestServer
) -> None:
    good = slack_notifier(session, str(slack_server.make_url(f"/services/{WEBHOOK}")))
    wrong_url = str(slack_server.make_url("/services/T0001/B0001/revoked-secret"))
    revoked = slack_notifier(session, wrong_url)

    invalid = await good.send(delivery("slack", {"text": "t", "blocks": []}))
    gone = await revoked.send(delivery("slack", {"text": "t"}))

    assert (invalid.ok, invalid.retryable, invalid.error) == (
        False,
        False,
        "HTTP 400: invalid_payload",
    )
    assert (gone.ok, gone.retryable, gone.error) == (False, False, "HTTP 404: no_service")


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"), [("429", 429, 3.0), ("500", 500, None), ("503", 503, None)]
)
async def test_slack_429_and_5xx_are_retryable(
    session: aiohttp.ClientSession,
    slack_server: TestServer,
    faults: Faults,
    fault: Any,
    status: int,
    retry_after: float | None,
) -> None:
    faults.queue(fault)
    notifier = slack_notifier(session, str(slack_server.make_url(f"/services/{WEBHOOK}")))

    outcome = await notifier.send(delivery("slack", {"text": "t"}))

    assert (outcome.ok, outcome.retryable, outcome.status) == (False, True, status)
    assert outcome.retry_after == retry_after


async def test_slack_timeout_and_refused_connection_are_retryable_without_secrets(
    session: aiohttp.ClientSession, slack_server: TestServer, faults: Faults
) -> None:
    faults.queue("timeout")
    slow = slack_notifier(session, str(slack_server.make_url(f"/services/{WEBHOOK}")), timeout=0.2)
    down = slack_notifier(session, f"http://127.0.0.1:{unused_port()}/services/{WEBHOOK}")

    timed_out = await slow.send(delivery("slack", {"text": "t"}))
    refused = await down.send(delivery("slack", {"text": "t"}))

    assert (timed_out.retryable, timed_out.error) == (True, "timeout after 0.2s")
    assert refused.retryable
    assert refused.error is not None
    assert refused.error.startswith("connection failed (")
    assert "secret" not in refused.error


async def test_unknown_destination_and_bad_url_are_permanent(
    session: aiohttp.ClientSession,
) -> None:
    # check-config refuses such a URL; the notifier does not trust that it never gets one.
    bad = SlackDestination.model_construct(
        webhook_url=SecretStr("not a url/services/secret"), channel=None, rate_per_second=1.0
    )
    notifier = SlackNotifier(session, {"main": bad}, timeout=5.0)

    unknown = await notifier.send(delivery("slack", {"text": "t"}, destination="gone"))
    bad_url = await notifier.send(delivery("slack", {"text": "t"}))

    assert (unknown.retryable, unknown.error) == (False, "no slack destination named 'gone'")
    assert not bad_url.retryable
    assert bad_url.error is not None
    assert "secret" not in bad_url.error


# --- PagerDuty -------------------------------------------------------------------------


@pytest.fixture
async def pagerduty_server(aiohttp_server: ServerFactory, faults: Faults) -> TestServer:
    app = pagerduty_events_api.make_app(faults, routing_keys={ROUTING_KEY})
    return await aiohttp_server(app)


def pagerduty_notifier(
    session: aiohttp.ClientSession, server: TestServer, routing_key: str = ROUTING_KEY
) -> PagerDutyNotifier:
    destination = PagerDutyDestination(
        routing_key=SecretStr(routing_key), events_url=str(server.make_url("/v2/enqueue"))
    )
    return PagerDutyNotifier(session, {"main": destination}, timeout=5.0)


async def test_pagerduty_trigger_then_resolve_with_the_configured_routing_key(
    session: aiohttp.ClientSession, pagerduty_server: TestServer
) -> None:
    notifier = pagerduty_notifier(session, pagerduty_server)
    # The outbox holds a placeholder; the notifier fills in the configured key.
    trigger = pagerduty_event(HIGH_ERROR_RATE, "", "trigger", "high")
    resolve = pagerduty_event(alert(status="resolved"), "", "resolve", "high")

    first = await notifier.send(delivery("pagerduty", trigger))
    again = await notifier.send(delivery("pagerduty", trigger))  # e.g. answer lost, resent
    state = pagerduty_server.app[pagerduty_events_api.EVENTS_STATE_KEY]
    paged = state.alert("tensafe:cba3ddb8f8c01bd6:2026-11-27T11:58:04Z")
    assert paged is not None
    assert (paged.status, paged.openings, paged.severity) == ("triggered", 1, "critical")

    resolved = await notifier.send(delivery("pagerduty", resolve))

    assert (first.ok, first.status, first.response) == (
        True,
        202,
        {"dedup_key": "tensafe:cba3ddb8f8c01bd6:2026-11-27T11:58:04Z"},
    )
    assert again.ok and resolved.ok
    assert paged.status == "resolved"
    assert len(state.alerts) == 1


async def test_pagerduty_400_is_permanent_and_keeps_pagerdutys_reason(
    session: aiohttp.ClientSession, pagerduty_server: TestServer
) -> None:
    wrong_key = "WRONGKEY000000000000000000000000"
    notifier = pagerduty_notifier(session, pagerduty_server, routing_key=wrong_key)

    outcome = await notifier.send(
        delivery("pagerduty", pagerduty_event(HIGH_ERROR_RATE, "", "trigger", "high"))
    )

    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, 400)
    assert outcome.error is not None
    assert "Invalid routing key" in outcome.error
    assert wrong_key not in outcome.error


@pytest.mark.parametrize(("fault", "status"), [("429", 429), ("500", 500), ("503", 503)])
async def test_pagerduty_429_and_5xx_are_retryable(
    session: aiohttp.ClientSession,
    pagerduty_server: TestServer,
    faults: Faults,
    fault: Any,
    status: int,
) -> None:
    faults.queue(fault)
    notifier = pagerduty_notifier(session, pagerduty_server)

    outcome = await notifier.send(
        delivery("pagerduty", pagerduty_event(HIGH_ERROR_RATE, "", "trigger", "high"))
    )

    assert (outcome.ok, outcome.retryable, outcome.status) == (False, True, status)
    state = pagerduty_server.app[pagerduty_events_api.EVENTS_STATE_KEY]
    assert state.alerts == {}


# --- Zendesk ---------------------------------------------------------------------------

RECORDER_KEY = web.AppKey("recorder", ContractRecorder)
WORLD_KEY = web.AppKey("world", World)
ZENDESK_CREDENTIALS = {"email": "bot@tensafe.example", "token": ZENDESK_TOKEN}


@pytest.fixture
async def zendesk_server(aiohttp_server: ServerFactory, faults: Faults) -> TestServer:
    world = generate(seed=1, size=WorldSize(accounts=3, tickets=2, subscriptions=0, incidents=0))
    app = zendesk_api.make_app(world, faults, credentials=ZENDESK_CREDENTIALS)
    recorder = ContractRecorder("zendesk")
    recorder.attach(app)
    app[RECORDER_KEY] = recorder
    app[WORLD_KEY] = world
    return await aiohttp_server(app)


def zendesk_notifier(
    session: aiohttp.ClientSession, server: TestServer, token: str = ZENDESK_TOKEN
) -> ZendeskNotifier:
    destination = ZendeskDestination(
        base_url=str(server.make_url("")), email="bot@tensafe.example", token=SecretStr(token)
    )
    return ZendeskNotifier(session, {"main": destination}, timeout=5.0)


def tickets_for(server: TestServer, external_id: str) -> list[dict[str, Any]]:
    world = server.app[WORLD_KEY]
    return [t for t in world.zendesk["tickets"] if t.get("external_id") == external_id]


async def test_zendesk_ticket_is_created_once_per_idempotency_key(
    session: aiohttp.ClientSession, zendesk_server: TestServer
) -> None:
    notifier = zendesk_notifier(session, zendesk_server)
    info = alert(severity="info")
    body = zendesk_ticket(info, info.starts_at + timedelta(hours=24))

    first = await notifier.send(delivery("zendesk", body, key="delivery-41"))
    replay = await notifier.send(delivery("zendesk", body, key="delivery-41"))

    assert (first.ok, first.status, first.response["idempotency_lookup"]) == (True, 201, "miss")
    assert replay.ok
    assert replay.response == {
        "idempotency_lookup": "hit",
        "ticket_id": first.response["ticket_id"],
    }
    [ticket] = tickets_for(zendesk_server, body["ticket"]["external_id"])
    assert (ticket["type"], ticket["priority"]) == ("task", "low")
    assert zendesk_server.app[RECORDER_KEY].check() == 2


async def test_zendesk_key_reused_with_another_body_is_permanent(
    session: aiohttp.ClientSession, zendesk_server: TestServer
) -> None:
    notifier = zendesk_notifier(session, zendesk_server)
    body = zendesk_ticket(HIGH_ERROR_RATE, HIGH_ERROR_RATE.respond_by)
    other = zendesk_ticket(alert(fingerprint="0000000000000001"), HIGH_ERROR_RATE.respond_by)

    await notifier.send(delivery("zendesk", body, key="delivery-42"))
    outcome = await notifier.send(delivery("zendesk", other, key="delivery-42"))

    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, 400)
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 400: IdempotentRequestError")
    assert tickets_for(zendesk_server, other["ticket"]["external_id"]) == []


async def test_zendesk_bad_token_is_permanent_and_not_echoed(
    session: aiohttp.ClientSession, zendesk_server: TestServer
) -> None:
    notifier = zendesk_notifier(session, zendesk_server, token="wrong-token-value")

    outcome = await notifier.send(delivery("zendesk", zendesk_ticket(HIGH_ERROR_RATE, CREATED)))

    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, 401)
    assert outcome.error is not None
    assert "wrong-token-value" not in outcome.error


async def test_zendesk_429_carries_retry_after(
    session: aiohttp.ClientSession, zendesk_server: TestServer, faults: Faults
) -> None:
    faults.queue("429")
    notifier = zendesk_notifier(session, zendesk_server)

    outcome = await notifier.send(delivery("zendesk", zendesk_ticket(HIGH_ERROR_RATE, CREATED)))

    assert (outcome.retryable, outcome.retry_after, outcome.status) == (True, 3.0, 429)
