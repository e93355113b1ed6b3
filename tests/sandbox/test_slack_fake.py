"""The fake Slack incoming webhook answers as Slack does."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.slack_api import SLACK_INBOX_KEY, SlackInbox, make_app

WEBHOOK = "T0001/B0001/s3cr3t"
URL = f"/services/{WEBHOOK}"

Client = TestClient[Any, Any]


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def faults() -> Faults:
    return Faults(retry_after=1)


@pytest.fixture
def monotonic() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def slack(
    aiohttp_client: Callable[..., Awaitable[Client]], faults: Faults, monotonic: ManualClock
) -> Client:
    inbox = SlackInbox(webhooks={WEBHOOK}, channels={"#incidents"}, archived=set())
    return await aiohttp_client(make_app(faults, inbox=inbox, monotonic=monotonic))


def inbox_of(client: Client) -> SlackInbox:
    assert client.app is not None
    inbox: SlackInbox = client.app[SLACK_INBOX_KEY]
    return inbox


async def test_a_valid_message_is_accepted_and_recorded(slack: Client) -> None:
    message = {
        "text": "fallback",
        "channel": "#incidents",
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "Hi"}}],
    }
    response = await slack.post(URL, json=message)

    assert (response.status, await response.text()) == (200, "ok")
    assert inbox_of(slack).for_webhook(WEBHOOK) == [message]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": 5},
        {"text": "t", "blocks": []},
        {
            "text": "t",
            "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        },
        {"text": "t", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]},
        {
            "text": "t",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        },
        {"text": "t", "blocks": [{"type": "section"}]},
        {
            "text": "t",
            "blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
        },
        {"text": "t", "blocks": [{"type": "divider"}] * 51},
        {"text": "t", "blocks": [{"type": "video"}]},
        {
            "text": "t",
            "blocks": [
                {
                    "type": "actions",
                    "elements": [
                        {"type": "button", "text": {"type": "plain_text", "text": "b" * 76}}
                    ],
                }
            ],
        },
    ],
)
async def test_messages_breaking_block_kit_rules_are_invalid_payload(
    slack: Client, body: dict[str, Any]
) -> None:
    response = await slack.post(URL, json=body)

    assert (response.status, await response.text()) == (400, "invalid_payload")
    assert inbox_of(slack).messages == []


async def test_malformed_json_is_invalid_payload(slack: Client) -> None:
    response = await slack.post(
        URL, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (response.status, await response.text()) == (400, "invalid_payload")


async def test_unknown_webhook_and_channel(slack: Client) -> None:
    unknown = await slack.post("/services/T0001/B0001/wrong", json={"text": "t"})
    assert (unknown.status, await unknown.text()) == (404, "no_service")

    channel = await slack.post(URL, json={"text": "t", "channel": "#nope"})
    assert (channel.status, await channel.text()) == (404, "channel_not_found")

    inbox_of(slack).archived.add(WEBHOOK)
    archived = await slack.post(URL, json={"text": "t"})
    assert (archived.status, await archived.text()) == (410, "channel_is_archived")


async def test_more_than_one_message_per_second_is_rate_limited(
    slack: Client, monotonic: ManualClock
) -> None:
    first = await slack.post(URL, json={"text": "1"})
    second = await slack.post(URL, json={"text": "2"})
    assert first.status == 200
    assert (second.status, await second.text()) == (429, "rate_limited")
    assert second.headers["Retry-After"] == "1"

    monotonic.now += 1.0
    third = await slack.post(URL, json={"text": "3"})
    assert third.status == 200
    assert [m["text"] for m in inbox_of(slack).for_webhook(WEBHOOK)] == ["1", "3"]


async def test_injected_faults_use_slack_error_codes(slack: Client, faults: Faults) -> None:
    faults.queue("500", "429")
    failed = await slack.post(URL, json={"text": "t"})
    throttled = await slack.post(URL, json={"text": "t"})

    assert (failed.status, await failed.text()) == (500, "rollup_error")
    assert (throttled.status, throttled.headers["Retry-After"]) == (429, "1")
    assert inbox_of(slack).messages == []
