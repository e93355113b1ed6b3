"""The dispatcher against a stateful in-memory outbox and the fake Slack workspace over real
HTTP, with an injected wall clock: rate limits, Retry-After, backoff, dead letters and
at-most-once success, as an operator would observe them (outbox state, messages received)."""

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from structlog.testing import capture_logs

from tensafe_ops.sandbox import slack_api
from tensafe_ops.sandbox.faults import Faults
from tests.conftest import FakeClock
from tests.webhook.memory_outbox import FlakyOutbox, InMemoryOutbox
from webhook.dispatch import Dispatcher, build_rate_limits, setup_dispatcher
from webhook.notifiers import Notifier, SlackNotifier
from webhook.outbox import Delivery, Outcome, Target
from webhook.targets import (
    DestinationsConfig,
    DispatchConfig,
    PagerDutyDestination,
    SlackDestination,
    ZendeskDestination,
)

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
WEBHOOKS = {f"team{i}": f"T0001/B000{i}/secret-{i}" for i in range(3)}


@pytest.fixture
def faults() -> Faults:
    return Faults(retry_after=1)


@pytest.fixture
async def slack_server(aiohttp_server: ServerFactory, faults: Faults) -> TestServer:
    inbox = slack_api.SlackInbox(webhooks=set(WEBHOOKS.values()), per_second=1000)
    return await aiohttp_server(slack_api.make_app(faults, inbox=inbox))


def inbox_of(server: TestServer) -> slack_api.SlackInbox:
    return server.app[slack_api.SLACK_INBOX_KEY]


def slack_destinations(server: TestServer, *, per_second: float = 200.0) -> DestinationsConfig:
    return DestinationsConfig(
        slack={
            name: SlackDestination(
                webhook_url=SecretStr(str(server.make_url(f"/services/{path}"))),
                channel=None,
                rate_per_second=per_second,
            )
            for name, path in WEBHOOKS.items()
        }
        | {
            "revoked": SlackDestination(
                webhook_url=SecretStr(str(server.make_url("/services/T0001/B0009/revoked-secret"))),
                channel=None,
            )
        }
    )


CONFIG = DispatchConfig(
    batch_size=50,
    lease_seconds=60,
    max_attempts=3,
    backoff_base=1,
    backoff_cap=8,
    poll_interval=0.01,
    request_timeout=5,
)


@pytest.fixture
async def make_dispatcher(
    slack_server: TestServer, clock: FakeClock
) -> AsyncIterator[Callable[..., Dispatcher]]:
    """Dispatchers draining into the fake Slack workspace, each with its own session."""
    sessions: list[ClientSession] = []

    def build(
        outbox: InMemoryOutbox,
        *,
        destinations: DestinationsConfig | None = None,
        config: DispatchConfig = CONFIG,
        limited: bool = True,
        wrap: Callable[[Notifier], Notifier] | None = None,
    ) -> Dispatcher:
        destinations = destinations or slack_destinations(slack_server)
        client_session = ClientSession()
        sessions.append(client_session)
        notifier: Notifier = SlackNotifier(client_session, destinations.slack, timeout=5)
        if wrap is not None:
            notifier = wrap(notifier)
        limits = build_rate_limits(destinations) if limited else {}
        return Dispatcher(outbox, {"slack": notifier}, limits, clock, config)

    yield build
    for client_session in sessions:
        await client_session.close()


def message(text: str) -> dict[str, Any]:
    return {"text": text}


async def test_retries_with_backoff_then_success(
    make_dispatcher: Callable[..., Dispatcher],
    slack_server: TestServer,
    faults: Faults,
    clock: FakeClock,
) -> None:
    outbox = InMemoryOutbox()
    delivery_id = outbox.add("slack", "team0", message("disk full"), clock())
    dispatcher = make_dispatcher(outbox)
    faults.queue("500", "503")

    await dispatcher.drain_once("slack")
    row = outbox.rows[delivery_id]
    assert (row.state, row.attempts, row.error) == ("pending", 1, "HTTP 500: rollup_error")
    assert row.not_before is not None
    assert clock() <= row.not_before <= clock() + timedelta(seconds=1)  # base 1 s, jittered

    clock.advance(seconds=1)
    await dispatcher.drain_once("slack")
    assert (row.state, row.attempts, row.error) == ("pending", 2, "HTTP 503: service_unavailable")
    assert row.not_before <= clock() + timedelta(seconds=2)  # second step: up to 2 s

    clock.advance(seconds=2)
    await dispatcher.drain_once("slack")
    assert (row.state, row.attempts, row.sent_status) == ("sent", 3, 200)
    assert inbox_of(slack_server).for_webhook(WEBHOOKS["team0"]) == [message("disk full")]
    assert dispatcher.stats.deliveries == {("slack", "retried"): 2, ("slack", "sent"): 1}


async def test_retry_after_is_honoured_for_the_delivery_and_the_destination(
    make_dispatcher: Callable[..., Dispatcher],
    slack_server: TestServer,
    faults: Faults,
    clock: FakeClock,
) -> None:
    outbox = InMemoryOutbox()
    first = outbox.add("slack", "team1", message("one"), clock())
    dispatcher = make_dispatcher(outbox)
    faults.queue("429")

    await dispatcher.drain_once("slack")
    assert outbox.rows[first].not_before == clock() + timedelta(seconds=1)

    # Not due yet: nothing is sent before Retry-After has passed.
    await dispatcher.drain_once("slack")
    assert faults.requests == 1

    # Once due, the destination itself was slowed down by the same second.
    clock.advance(seconds=1)
    started = time.monotonic()
    await dispatcher.drain_once("slack")
    assert time.monotonic() - started >= 0.9
    assert outbox.states() == {first: "sent"}
    assert [m["text"] for m in inbox_of(slack_server).for_webhook(WEBHOOKS["team1"])] == ["one"]


async def test_4xx_is_dead_lettered_at_once_with_the_error_and_no_secret_logged(
    make_dispatcher: Callable[..., Dispatcher], slack_server: TestServer, clock: FakeClock
) -> None:
    outbox = InMemoryOutbox()
    dead = outbox.add("slack", "revoked", message("lost"), clock())
    invalid = outbox.add("slack", "team0", {"text": "t", "blocks": []}, clock())
    unknown = outbox.add("slack", "no-such-destination", message("x"), clock())
    dispatcher = make_dispatcher(outbox)

    with capture_logs() as logs:
        await dispatcher.drain_once("slack")
        clock.advance(hours=1)
        await dispatcher.drain_once("slack")  # dead letters are never claimed again

    assert outbox.states() == {dead: "dead", invalid: "dead", unknown: "dead"}
    assert outbox.rows[dead].error == "HTTP 404: no_service"
    assert outbox.rows[invalid].error == "HTTP 400: invalid_payload"
    assert outbox.rows[unknown].error == "no slack destination named 'no-such-destination'"
    assert [code for _, _, code in inbox_of(slack_server).rejected] == [
        "no_service",
        "invalid_payload",
    ]
    assert dispatcher.stats.deliveries == {("slack", "dead"): 3}
    assert [e["event"] for e in logs] == ["delivery_dead"] * 3
    assert "secret" not in repr(logs)


async def test_retryable_failures_are_dead_lettered_after_max_attempts(
    make_dispatcher: Callable[..., Dispatcher], faults: Faults, clock: FakeClock
) -> None:
    outbox = InMemoryOutbox()
    delivery_id = outbox.add("slack", "team2", message("flapping"), clock())
    dispatcher = make_dispatcher(outbox)
    faults.queue("500", "500", "500", "500")

    for _ in range(4):
        await dispatcher.drain_once("slack")
        clock.advance(seconds=CONFIG.backoff_cap)

    row = outbox.rows[delivery_id]
    assert (row.state, row.attempts) == ("dead", 3)
    assert row.error == "gave up after 3 attempts: HTTP 500: rollup_error"
    assert faults.requests == 3


async def test_slack_rate_limit_per_webhook_is_respected(
    make_dispatcher: Callable[..., Dispatcher], slack_server: TestServer, clock: FakeClock
) -> None:
    inbox = inbox_of(slack_server)
    inbox.per_second = 10
    outbox = InMemoryOutbox()
    for i in range(12):
        outbox.add("slack", "team0", message(f"m{i}"), clock())
    # Slightly under the fake's limit, so loopback latency jitter cannot cross it.
    dispatcher = make_dispatcher(
        outbox, destinations=slack_destinations(slack_server, per_second=9)
    )

    started = time.monotonic()
    await dispatcher.drain_once("slack")

    assert time.monotonic() - started >= 11 / 9 - 0.05
    assert inbox.rejected == []
    assert [m["text"] for m in inbox.for_webhook(WEBHOOKS["team0"])] == [f"m{i}" for i in range(12)]

    # Control: without the limiter the same burst is throttled by Slack.
    unlimited_outbox = InMemoryOutbox()
    for i in range(15):
        unlimited_outbox.add("slack", "team1", message(f"u{i}"), clock())
    await make_dispatcher(unlimited_outbox, limited=False).drain_once("slack")
    assert ("T0001/B0001/secret-1", 429, "rate_limited") in inbox.rejected


class SlowFirstRecord(InMemoryOutbox):
    """The first `sending` record waits behind another writer (an ingest commit)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def start_sending(self, delivery: Delivery, now: datetime) -> bool:
        if self.delay:
            await asyncio.sleep(self.delay)
            self.delay = 0.0
        return await super().start_sending(delivery, now)


async def test_slack_pacing_counts_from_the_send_not_from_a_slow_record(
    make_dispatcher: Callable[..., Dispatcher], slack_server: TestServer, clock: FakeClock
) -> None:
    """Slack allows one message a second. The token is taken before the attempt is recorded;
    when that write waits 0.3 s, the next message must still go a full interval after the
    first one was sent, not after its token was taken (it came 0.75 s after and got a 429)."""
    inbox = inbox_of(slack_server)
    inbox.per_second = 1
    outbox = SlowFirstRecord(delay=0.3)
    for i in range(3):
        outbox.add("slack", "team0", message(f"m{i}"), clock())
    dispatcher = make_dispatcher(
        outbox, destinations=slack_destinations(slack_server, per_second=1)
    )

    await dispatcher.drain_once("slack")

    assert inbox.rejected == []
    received = inbox.for_webhook(WEBHOOKS["team0"])
    assert [m["text"] for m in received] == ["m0", "m1", "m2"]
    arrivals = [m.at for m in inbox.messages if m.webhook == WEBHOOKS["team0"]]
    assert min(b - a for a, b in itertools.pairwise(arrivals)) >= 1.0


def test_rate_limits_per_destination() -> None:
    destinations = DestinationsConfig(
        slack={"a": SlackDestination(webhook_url=SecretStr("https://hooks/x"), channel=None)},
        pagerduty={"p": PagerDutyDestination(routing_key=SecretStr("k"))},
        zendesk={
            "z": ZendeskDestination(
                base_url="https://t.zendesk.com",
                email="e",
                token=SecretStr("t"),
                rate_per_minute=400,
            )
        },
    )
    limits = build_rate_limits(destinations)

    slack = limits[("slack", "a")]
    assert slack.rate == pytest.approx(0.95)  # just under 1/s
    assert slack.capacity == 1
    assert limits[("pagerduty", "p")].rate == pytest.approx(2.0 * 0.95)  # 120 per minute
    assert limits[("pagerduty", "p")].capacity == 1  # no burst on top of the minute's budget
    assert limits[("zendesk", "z")].rate == pytest.approx(400 / 60 * 0.95)


async def test_two_dispatchers_sharing_the_outbox_send_each_delivery_once(
    make_dispatcher: Callable[..., Dispatcher], slack_server: TestServer, clock: FakeClock
) -> None:
    outbox = InMemoryOutbox()
    for i in range(60):
        outbox.add("slack", f"team{i % 3}", message(f"alert {i}"), clock())
    config = CONFIG.model_copy(update={"batch_size": 7})
    replicas = [make_dispatcher(outbox, config=config) for _ in range(2)]

    for replica in replicas:
        replica.start()
    await outbox.wait_until(lambda: set(outbox.states().values()) == {"sent"})
    for replica in replicas:
        await replica.stop()

    received = [m.payload["text"] for m in inbox_of(slack_server).messages]
    assert sorted(received) == sorted(f"alert {i}" for i in range(60))
    assert outbox.double_sends == []
    assert all(replica.stats.deliveries[("slack", "sent")] > 0 for replica in replicas)
    assert all(not replica.tasks for replica in replicas)


@dataclass
class SlowNotifier:
    """Passes sends through to the real notifier while 30 s of wall clock pass per send."""

    inner: Notifier
    clock: FakeClock

    async def send(self, delivery: Delivery) -> Outcome:
        outcome = await self.inner.send(delivery)
        self.clock.advance(seconds=30)
        return outcome


async def test_no_send_starts_when_the_lease_is_about_to_run_out(
    make_dispatcher: Callable[..., Dispatcher], slack_server: TestServer, clock: FakeClock
) -> None:
    outbox = InMemoryOutbox()
    ids = [outbox.add("slack", "team0", message(f"m{i}"), clock()) for i in range(3)]
    dispatcher = make_dispatcher(outbox, wrap=lambda inner: SlowNotifier(inner, clock))

    await dispatcher.drain_once("slack")  # lease 60 s, request timeout 5 s: 2 sends fit

    assert [outbox.rows[i].state for i in ids] == ["sent", "sent", "pending"]
    assert len(inbox_of(slack_server).messages) == 2
    # Another replica can take it as soon as the lease has run out.
    assert [d.id for d in await outbox.claim("slack", 10, clock(), 60)] == [ids[2]]


async def test_setup_dispatcher_delivers_for_the_app_lifetime(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    slack_server: TestServer,
    clock: FakeClock,
) -> None:
    outbox = InMemoryOutbox()
    delivery_id = outbox.add("slack", "team2", message("from the app"), clock())
    app = web.Application()
    stats = setup_dispatcher(app, outbox, slack_destinations(slack_server), CONFIG, clock).stats

    client = await aiohttp_client(app)
    await outbox.wait_until(lambda: outbox.rows[delivery_id].state == "sent")
    await client.close()

    assert stats.deliveries == {("slack", "sent"): 1}
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("dispatch-")]
    late = outbox.add("slack", "team2", message("after shutdown"), clock())
    await asyncio.sleep(0.05)
    assert outbox.rows[late].state == "pending"


@dataclass
class BrokenOnceNotifier:
    """Raises on its first send (a bug), then passes through to the real notifier."""

    inner: Notifier
    broken: bool = True

    async def send(self, delivery: Delivery) -> Outcome:
        if self.broken:
            self.broken = False
            raise KeyError("payload")
        return await self.inner.send(delivery)


async def test_outbox_outage_and_notifier_bug_do_not_stop_the_loop(
    make_dispatcher: Callable[..., Dispatcher], slack_server: TestServer, clock: FakeClock
) -> None:
    outbox = InMemoryOutbox()
    delivery_id = outbox.add("slack", "team0", message("eventually"), clock())
    dispatcher = make_dispatcher(outbox, wrap=BrokenOnceNotifier)
    dispatcher.outbox = FlakyOutbox(outbox, failures=2)

    with capture_logs() as logs:
        dispatcher.start()
        await outbox.wait_until(lambda: outbox.rows[delivery_id].attempts == 1)
        clock.advance(seconds=CONFIG.backoff_base)  # past the jittered backoff
        await outbox.wait_until(lambda: outbox.rows[delivery_id].state == "sent")
        await dispatcher.stop()

    events = [e["event"] for e in logs]
    assert events.count("dispatch_round_failed") == 2
    assert "notifier_failed" in events
    assert outbox.rows[delivery_id].attempts == 2
    assert [m.payload for m in inbox_of(slack_server).messages] == [message("eventually")]


def test_lease_must_outlast_a_request() -> None:
    with pytest.raises(ValueError, match="lease_seconds must be at least twice request_timeout"):
        DispatchConfig(lease_seconds=10, request_timeout=10)


async def test_retry_delays(make_dispatcher: Callable[..., Dispatcher]) -> None:
    dispatcher = make_dispatcher(InMemoryOutbox())  # backoff base 1 s, cap 8 s

    def delay(attempt: int, **outcome: Any) -> float:
        return dispatcher.retry_delay(Outcome(ok=False, retryable=True, **outcome), attempt)

    assert delay(1, status=429, retry_after=30.0) == 30.0
    assert delay(1, status=429, retry_after=86400.0) == 3600.0  # a bogus header is capped
    # PagerDuty's own 429 has no Retry-After: the full step, never a jittered zero.
    assert [delay(n, status=429) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 8]
    assert all(0 <= delay(n, status=503) <= min(8, 2 ** (n - 1)) for n in range(1, 12))


def storm_destinations(server: TestServer) -> DestinationsConfig:
    """A slow `alerts` webhook (5 msg/s stands in for Slack's 1) and a separate `incidents`."""
    url = server.make_url
    return DestinationsConfig(
        slack={
            "alerts": SlackDestination(
                webhook_url=SecretStr(str(url(f"/services/{WEBHOOKS['team0']}"))),
                channel=None,
                rate_per_second=5,
            ),
            "incidents": SlackDestination(
                webhook_url=SecretStr(str(url(f"/services/{WEBHOOKS['team1']}"))),
                channel=None,
                rate_per_second=5,
            ),
        }
    )


async def test_a_storm_to_one_destination_does_not_delay_another(
    make_dispatcher: Callable[..., Dispatcher], slack_server: TestServer, clock: FakeClock
) -> None:
    outbox = InMemoryOutbox()
    storm = [outbox.add("slack", "alerts", message(f"cpu {i}"), clock()) for i in range(30)]
    dispatcher = make_dispatcher(outbox, destinations=storm_destinations(slack_server))
    dispatcher.start()
    await outbox.wait_until(lambda: outbox.rows[storm[0]].state == "sent")

    incident = outbox.add("slack", "incidents", message("API down"), clock())
    started = time.monotonic()
    await outbox.wait_until(lambda: outbox.rows[incident].state == "sent")
    waited = time.monotonic() - started
    storm_sent = sum(outbox.rows[i].state == "sent" for i in storm)
    await dispatcher.stop()

    assert waited < 1.0  # not after the storm (30 messages at ~5/s: 6 s)
    assert storm_sent < 15
    assert [m["text"] for m in inbox_of(slack_server).for_webhook(WEBHOOKS["team1"])] == [
        "API down"
    ]
    # The storm's unsent remainder was handed back on stop: claimable now, not in 60 s.
    unsent = [i for i in storm if outbox.rows[i].state == "pending"]
    assert unsent and outbox.released == unsent
    assert [d.id for d in await outbox.claim("slack", 50, clock(), 60)] == unsent


@dataclass
class HangingNotifier:
    """Never answers the send of `stuck` (a request hanging past shutdown); passes the rest."""

    inner: Notifier
    stuck: int

    async def send(self, delivery: Delivery) -> Outcome:
        if delivery.id == self.stuck:
            await asyncio.Event().wait()
        return await self.inner.send(delivery)


async def test_a_cancelled_dispatcher_releases_what_it_did_not_attempt(
    make_dispatcher: Callable[..., Dispatcher], slack_server: TestServer, clock: FakeClock
) -> None:
    outbox = InMemoryOutbox()
    ids = [outbox.add("slack", "team0", message(f"m{i}"), clock()) for i in range(3)]
    config = CONFIG.model_copy(update={"request_timeout": 0.2})
    dispatcher = make_dispatcher(
        outbox, config=config, wrap=lambda inner: HangingNotifier(inner, stuck=ids[0])
    )
    dispatcher.start()
    await asyncio.sleep(0.2)  # the first send hangs; stop() cancels it after its timeout
    await dispatcher.stop()

    # The hanging send may have reached Slack: it keeps its lease (no quick resend)...
    assert outbox.released == ids[1:]
    assert outbox.rows[ids[0]].leased_until == clock() + timedelta(seconds=60)
    # ...while a restart sends the two never attempted at once.
    restarted = make_dispatcher(outbox)
    await restarted.drain_once("slack")
    # The hanging one is recorded as under way (Slack): never re-sent by a claim.
    assert outbox.states() == {ids[0]: "sending", ids[1]: "sent", ids[2]: "sent"}
    assert [m["text"] for m in inbox_of(slack_server).for_webhook(WEBHOOKS["team0"])] == [
        "m1",
        "m2",
    ]


@dataclass
class StuckReleaseOutbox(InMemoryOutbox):
    """The in-memory outbox whose database stops answering just as leases are released."""

    async def release(self, delivery_ids: Sequence[int], now: datetime) -> None:
        await asyncio.Event().wait()


async def test_shutdown_does_not_hang_on_releasing_leases(
    make_dispatcher: Callable[..., Dispatcher], clock: FakeClock
) -> None:
    outbox = StuckReleaseOutbox()
    ids = [outbox.add("slack", "team0", message(f"m{i}"), clock()) for i in range(3)]
    config = CONFIG.model_copy(update={"request_timeout": 0.2})
    dispatcher = make_dispatcher(
        outbox, config=config, wrap=lambda inner: HangingNotifier(inner, stuck=ids[0])
    )
    dispatcher.release_timeout = 0.1
    dispatcher.start()
    await asyncio.sleep(0.2)

    started = time.monotonic()
    with capture_logs() as logs:
        await dispatcher.stop()

    assert time.monotonic() - started < 2.0  # request_timeout + 1 s, then 0.1 s to release
    assert [e["event"] for e in logs] == ["leases_not_released"]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("dispatch-")]
    # Not released: the rows wait for their lease to run out, as after a crash.
    assert all(outbox.rows[i].leased_until == clock() + timedelta(seconds=60) for i in ids)


@dataclass
class CountingOutbox(InMemoryOutbox):
    """The in-memory outbox, counting the looks for due destinations and each claim's size."""

    looks: int = 0
    claims: list[int] = field(default_factory=list)

    async def due_destinations(self, target: Target, now: datetime) -> list[str]:
        self.looks += 1
        return await super().due_destinations(target, now)

    async def claim(
        self,
        target: Target,
        limit: int,
        now: datetime,
        lease_seconds: float,
        destination: str | None = None,
    ) -> list[Delivery]:
        claimed = await super().claim(target, limit, now, lease_seconds, destination)
        self.claims.append(len(claimed))
        return claimed


@dataclass
class GatedNotifier:
    """Holds the first send until `gate` is set (a slow answer); passes everything through."""

    inner: Notifier
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    holding: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, delivery: Delivery) -> Outcome:
        if not self.gate.is_set():
            self.holding.set()
            await self.gate.wait()
        return await self.inner.send(delivery)


async def test_woken_destinations_are_drained_at_once_and_wake_ups_add_up(
    make_dispatcher: Callable[..., Dispatcher], slack_server: TestServer, clock: FakeClock
) -> None:
    """The ingester names the destinations it added deliveries for: they are drained without
    a look at the outbox, and deliveries announced while the destination is busy are claimed
    together once it is free — none waits for the next poll (an hour here)."""
    outbox = CountingOutbox()
    gated = GatedNotifier(inner=None)  # type: ignore[arg-type]

    def wrap(inner: Notifier) -> Notifier:
        gated.inner = inner
        return gated

    dispatcher = make_dispatcher(
        outbox, config=CONFIG.model_copy(update={"poll_interval": 3600}), wrap=wrap
    )
    dispatcher.start()
    await asyncio.sleep(0.05)  # the first look (empty outbox); the next one is in an hour
    first = outbox.add("slack", "team0", message("first"), clock())
    dispatcher.wake_up.notify([("slack", "team0")])
    await gated.holding.wait()  # its send hangs...
    later = [outbox.add("slack", "team0", message(f"later {i}"), clock()) for i in range(4)]
    for _ in later:  # ...while the ingester announces four more, one by one
        dispatcher.wake_up.notify([("slack", "team0")])
        await asyncio.sleep(0.01)
    gated.gate.set()
    await outbox.wait_until(lambda: set(outbox.states().values()) == {"sent"})
    await dispatcher.stop()

    assert outbox.looks == 1
    assert outbox.claims == [1, 4]  # the four wake-ups became one claim
    texts = [m["text"] for m in inbox_of(slack_server).for_webhook(WEBHOOKS["team0"])]
    assert texts == ["first"] + [f"later {i}" for i in range(4)]
    assert outbox.states() == dict.fromkeys([first, *later], "sent")
