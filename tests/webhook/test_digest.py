"""Slack digests: info alerts collected and sent as one Block Kit message per interval.

The renderer on its own (Block Kit limits checked by the Slack fake's own validator), then
the whole service (real store on SQLite and PostgreSQL, digest loop, real dispatcher)
delivering to the Slack fake.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tensafe_ops.sandbox import slack_api
from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.settings import ConfigError, parse_settings
from tests.conftest import FakeClock
from tests.webhook.am import API, am_alert, notification, resolved, webhook_app, webhook_settings
from tests.webhook.test_delivery_e2e import deliveries_in, eventually, post
from webhook.digest import digest_due, digest_key, digest_message, humanize
from webhook.digest_store import DigestStore
from webhook.handlers import WEBHOOK_KEY
from webhook.outbox import AlertView

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
ALERTS = "T1/B2/alerts-secret"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DIGEST_ROUTES = [
    {"name": "info", "matchers": ['severity="info"'], "targets": ["slack_digest:alerts"]},
]
FAST = {"poll_interval": 0.02, "backoff_base": 1, "request_timeout": 5, "lease_seconds": 30}
INFO_NAMES = ("NewCustomerSignup", "HighTraining", "CertExpiringSoon")


def view(alertname: str, **overrides: Any) -> AlertView:
    fields: dict[str, Any] = {
        "alert_id": 1,
        "fingerprint": "0123456789abcdef",
        "alertname": alertname,
        "status": "firing",
        "severity": "info",
        "labels": {"alertname": alertname, "severity": "info", "tenant": "acct_00001"},
        "annotations": {"summary": f"{alertname} on api-1"},
        "starts_at": NOW,
        "ends_at": None,
        "generator_url": "http://prometheus.example:9090/graph?g0.expr=up&g0.tab=1",
        "external_url": "http://alertmanager.example:9093",
        "respond_by": NOW + timedelta(hours=24),
    }
    return AlertView(**(fields | overrides))


# -- the renderer ----------------------------------------------------------------------------


def test_a_full_digest_of_huge_alerts_stays_within_block_kit_limits() -> None:
    huge = "x<&>" * 2000
    alerts = [
        view(
            f"Alert{i}" + "N" * 300,
            labels={f"label_{j}": huge for j in range(30)},
            annotations={"summary": huge, "description": huge},
            generator_url="https://prometheus.example/" + "p" * 5000,
        )
        for i in range(48)
    ]
    message = digest_message(alerts, span_seconds=3600, remaining=7, channel="#alerts")

    assert slack_api.message_error(message) is None  # what Slack would refuse
    blocks = message["blocks"]
    assert len(blocks) == 50
    assert len(blocks[0]["text"]["text"]) <= 150
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks[1:-1])
    assert all(f"Alert{i}" in blocks[1 + i]["text"]["text"] for i in range(48))
    # Every part of every line survives (budgets, not one cut at 3000): the labels that did
    # not fit are counted, and the respond-by time is still there.
    for block in blocks[1:-1]:
        assert block["text"]["text"].endswith(
            " more\nStarted 2026-11-27 12:00 UTC · respond by *2026-11-28 12:00 UTC*"
        )
    assert "7 more pending" in blocks[-1]["elements"][0]["text"]
    assert len(message["text"]) <= 3000 and message["channel"] == "#alerts"
    with pytest.raises(ValueError, match="1 to 48 alerts"):
        digest_message([*alerts, alerts[0]], span_seconds=3600, remaining=0, channel=None)


def test_a_digest_line_shows_what_to_review_and_by_when() -> None:
    firing = view("NewCustomerSignup", annotations={"summary": "Acme <Corp> signed up & paid"})
    done = view(
        "CertExpiringSoon",
        status="resolved",
        ends_at=NOW + timedelta(minutes=30),
        labels={"alertname": "CertExpiringSoon", "severity": "info", "host": "api.tensafe.io"},
    )
    message = digest_message([firing, done], span_seconds=2700, remaining=0, channel=None)

    assert message["blocks"][0]["text"]["text"] == "2 informational alerts in the last 45 min"
    first = message["blocks"][1]["text"]["text"]
    assert first == (
        ":information_source: *<http://prometheus.example:9090/graph?g0.expr=up&amp;g0.tab=1"
        "|NewCustomerSignup>* — Acme &lt;Corp&gt; signed up &amp; paid\n"
        "`tenant=acct_00001`\n"
        "Started 2026-11-27 12:00 UTC · respond by *2026-11-28 12:00 UTC*"
    )
    second = message["blocks"][2]["text"]["text"]
    assert second.startswith(":white_check_mark: ")
    assert second.endswith(
        "`host=api.tensafe.io`\nStarted 2026-11-27 12:00 UTC · resolved 2026-11-27 12:30 UTC"
    )
    assert message["text"] == (
        "2 informational alerts in the last 45 min: NewCustomerSignup, CertExpiringSoon"
    )
    assert "channel" not in message


def test_a_digest_of_other_severities_does_not_call_them_informational() -> None:
    message = digest_message(
        [view("HighCPU", severity="warning")], span_seconds=86400, remaining=0, channel=None
    )
    assert message["blocks"][0]["text"]["text"] == "1 alert in the last 24 h"


def test_due_after_the_interval_or_at_the_daily_hour() -> None:
    oldest = datetime(2026, 11, 27, 12, 5, tzinfo=UTC)
    assert not digest_due(oldest, oldest + timedelta(seconds=3599), 3600)
    assert digest_due(oldest, oldest + timedelta(seconds=3600), 3600)
    # Daily at 09:00 UTC: an item from 12:05 waits for tomorrow's 09:00, whatever the interval.
    assert not digest_due(oldest, datetime(2026, 11, 28, 8, 59, tzinfo=UTC), 60, at_utc_hour=9)
    assert digest_due(oldest, datetime(2026, 11, 28, 9, 0, tzinfo=UTC), 60, at_utc_hour=9)
    assert digest_due(oldest, datetime(2026, 11, 27, 13, 0, tzinfo=UTC), 60, at_utc_hour=13)


def test_keys_name_the_destination_and_exact_items() -> None:
    assert digest_key("alerts", [3, 1, 2]) == digest_key("alerts", [1, 2, 3])
    assert digest_key("alerts", [1, 2, 3]).startswith("slack_digest:alerts:1-3:")
    assert digest_key("alerts", [1, 2, 3]) != digest_key("alerts", [1, 3])
    assert digest_key("alerts", [1, 2]) != digest_key("incidents", [1, 2])
    assert [humanize(s) for s in (30, 2700, 3600, 5400, 86400)] == [
        "1 min",
        "45 min",
        "1 h",
        "1 h 30 min",
        "24 h",
    ]


def test_config_names_an_unknown_digest_destination(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    routes = [{"name": "review", "targets": ["slack_digest:ops-digest"]}]
    with pytest.raises(ConfigError) as raised:
        parse_settings(webhook_settings(tmp_path, db_url, routes=routes))
    assert (
        "routes.review: slack_digest destination 'ops-digest' is not configured under "
        "destinations.slack" in str(raised.value)
    )
    for digest, field in (({"max_alerts": 49}, "max_alerts"), ({"at_utc_hour": 24}, "at_utc_hour")):
        with pytest.raises(ConfigError, match=f"webhook.digest.{field}"):
            parse_settings(webhook_settings(tmp_path, db_url, digest=digest))


# -- the service -------------------------------------------------------------------------------


@pytest.fixture
async def slack(aiohttp_server: ServerFactory) -> TestServer:
    inbox = slack_api.SlackInbox(webhooks={ALERTS}, per_second=100)
    return await aiohttp_server(slack_api.make_app(Faults(), inbox=inbox))


def inbox(slack: TestServer) -> slack_api.SlackInbox:
    return slack.app[slack_api.SLACK_INBOX_KEY]


def digest_app(
    tmp_path: Path,
    db_url: str,
    clock: FakeClock,
    slack: TestServer | None,
    **digest: Any,
) -> web.Application:
    """Info alerts go to a digest for the Slack destination `alerts` (the fake, or a closed
    port when `slack` is None)."""
    extra: dict[str, Any] = {"routes": DIGEST_ROUTES, "digest": {"poll_interval": 0.02, **digest}}
    if slack is not None:
        url = str(slack.make_url(f"/services/{ALERTS}"))
        extra["destinations"] = {"slack": {"alerts": {"webhook_url": url, "rate_per_second": 50}}}
        extra["dispatch"] = FAST
    return webhook_app(tmp_path, db_url, clock, **extra)


def info_alerts(count: int) -> list[dict[str, Any]]:
    return [
        am_alert(INFO_NAMES[i % 3], "info", instance=f"api-{i}", tenant=f"acct_{i:05d}")
        for i in range(count)
    ]


def listed(message: dict[str, Any]) -> list[str]:
    """The `instance` label of each alert a digest lists (alerts in the tests are unique by it)."""
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    return [text.split("`instance=")[1].split("`")[0] for text in sections]


async def nothing_more(seconds: float = 0.3) -> None:
    """Give the loops time to do something they should not."""
    await asyncio.sleep(seconds)


async def test_info_alerts_arrive_as_one_digest_after_the_interval(
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    state_db_url: str,
    clock: FakeClock,
    slack: TestServer,
) -> None:
    client = await aiohttp_client(digest_app(tmp_path, state_db_url, clock, slack))
    alerts = info_alerts(3)
    await post(client, notification(*alerts))
    await post(client, notification(*alerts))  # an HA duplicate adds no second item
    clock.advance(minutes=20)
    await post(client, notification(resolved(alerts[1], clock())))
    await nothing_more()
    assert inbox(slack).messages == []  # not one by one, and not before the interval

    clock.advance(minutes=40)
    await eventually(lambda: len(inbox(slack).messages) == 1)
    await nothing_more()

    [message] = inbox(slack).for_webhook(ALERTS)
    assert message["blocks"][0]["text"]["text"] == "3 informational alerts in the last 1 h"
    assert sorted(listed(message)) == ["api-0", "api-1", "api-2"]
    sections = message["blocks"][1:-1]
    lines = {name: b["text"]["text"] for name, b in zip(listed(message), sections, strict=True)}
    assert "respond by *2026-11-28 12:00 UTC*" in lines["api-0"]  # received + 24 h
    assert "resolved 2026-11-27 12:20 UTC" in lines["api-1"]
    [sent] = await deliveries_in(client, "sent", 1)
    assert (sent["target"], sent["destination"], sent["kind"]) == ("slack", "alerts", "digest")
    assert sent["payload"] == message
    store = DigestStore(client.server.app[WEBHOOK_KEY].store)
    assert len(await store.items_of(sent["id"])) == 3  # the items point to their message

    # Still on the respond-within SLA: 24 h from first receipt.
    response = await client.get("/api/v1/alerts", params={"state": "firing"}, headers=API)
    firing = (await response.json())["alerts"]
    assert {a["respond_by"] for a in firing} == {"2026-11-28T12:00:00Z"}

    # A repeat notification of the same alerts after the digest adds nothing to the next one.
    await post(client, notification(alerts[0], alerts[2]))
    clock.advance(hours=2)
    await nothing_more()
    assert len(inbox(slack).messages) == 1
    metrics = await (await client.get("/metrics")).text()
    assert "tensafe_webhook_digest_messages_total 1.0" in metrics
    assert "tensafe_webhook_digest_alerts_total 3.0" in metrics
    assert "tensafe_webhook_digest_alerts_pending 0.0" in metrics


async def test_more_alerts_than_fit_go_out_in_several_messages_oldest_first(
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    state_db_url: str,
    clock: FakeClock,
    slack: TestServer,
) -> None:
    client = await aiohttp_client(digest_app(tmp_path, state_db_url, clock, slack, max_alerts=2))
    for alert in info_alerts(5):
        await post(client, notification(alert))
        clock.advance(minutes=1)
    clock.advance(hours=1)
    await eventually(lambda: len(inbox(slack).messages) == 3)
    await nothing_more()

    messages = inbox(slack).for_webhook(ALERTS)
    assert [listed(m) for m in messages] == [["api-0", "api-1"], ["api-2", "api-3"], ["api-4"]]
    assert [m["blocks"][0]["text"]["text"] for m in messages] == [
        "2 informational alerts in the last 1 h 5 min",
        "2 informational alerts in the last 1 h 3 min",
        "1 informational alert in the last 1 h 1 min",
    ]
    footers = [m["blocks"][-1]["elements"][0]["text"] for m in messages]
    assert footers[0].startswith("3 more pending") and footers[1].startswith("1 more pending")
    assert footers[2].startswith("Oldest first")
    assert len(await deliveries_in(client, "sent", 3)) == 3


async def test_a_digest_goes_out_once_across_restarts(
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    state_db_url: str,
    clock: FakeClock,
    slack: TestServer,
) -> None:
    # First life: the alerts arrive and the process stops before the digest is due.
    first = await aiohttp_client(digest_app(tmp_path, state_db_url, clock, None))
    await post(first, notification(*info_alerts(3)))
    await first.close()

    # Second life: the digest becomes due and is put in the outbox, but Slack is unreachable
    # (and the dispatcher idle), so it is still pending when this process stops too.
    clock.advance(hours=1)
    second = await aiohttp_client(digest_app(tmp_path, state_db_url, clock, None))
    [pending] = await deliveries_in(second, "pending", 1)
    assert pending["kind"] == "digest"
    await second.close()

    # Third life, after any retry delay of a failed attempt: the dispatcher sends it, once;
    # the digest loop finds nothing left to list.
    clock.advance(hours=1)
    third = await aiohttp_client(digest_app(tmp_path, state_db_url, clock, slack))
    await eventually(lambda: len(inbox(slack).messages) == 1)
    clock.advance(hours=1)
    await nothing_more()

    [message] = inbox(slack).messages
    assert sorted(listed(message.payload)) == ["api-0", "api-1", "api-2"]
    [sent] = await deliveries_in(third, "sent", 1)
    assert sent["id"] == pending["id"]
    assert await deliveries_in(third, "pending", 0) == []


async def test_two_replicas_list_every_alert_exactly_once(
    aiohttp_client: ClientFactory, tmp_path: Path, pg_url: str, clock: FakeClock, slack: TestServer
) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    replicas = [
        await aiohttp_client(digest_app(tmp_path / name, pg_url, clock, slack, max_alerts=3))
        for name in ("a", "b")
    ]
    for i, alert in enumerate(info_alerts(20)):
        await post(replicas[i % 2], notification(alert))
    clock.advance(hours=1)
    await eventually(lambda: sum(len(listed(m.payload)) for m in inbox(slack).messages) >= 20)
    await nothing_more()

    everything = [name for m in inbox(slack).messages for name in listed(m.payload)]
    assert sorted(everything) == sorted(f"api-{i}" for i in range(20))
    assert all(len(listed(m.payload)) <= 3 for m in inbox(slack).messages)
