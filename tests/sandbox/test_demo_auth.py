"""`serve --demo` keeps the webhook and API credentials a config file sets; only without any
does the demo run them open, and its start-up block says which."""

from datetime import UTC, datetime

from pydantic import SecretStr

from tensafe_ops.sandbox.banner import startup_block
from tensafe_ops.sandbox.server import RunningWorld
from tensafe_ops.sandbox.world import WorldSize, generate
from tensafe_ops.settings import parse_settings
from webhook.config import DEFAULT_RECEIVER_PATH, Credentials

URLS = {
    name: f"http://127.0.0.1:{1000 + n}"
    for n, name in enumerate(
        ("zendesk", "stripe", "pagerduty", "pagerduty_events", "slack", "product")
    )
}


def running() -> RunningWorld:
    world = generate(seed=1, size=WorldSize(accounts=2, tickets=1, subscriptions=0, incidents=0))
    return RunningWorld(world=world, usage_db_url="sqlite+aiosqlite:///u.db", urls=dict(URLS))


def test_the_demo_keeps_the_configured_credentials() -> None:
    configured = parse_settings(
        {
            "webhook": {
                "receivers": {DEFAULT_RECEIVER_PATH: {"auth": {"bearer_token": "am-t0ken"}}},
                "api_auth": {"bearer_token": "api-t0ken"},
            }
        }
    )
    demo = running().configure(configured)
    receiver = demo.webhook.receivers[DEFAULT_RECEIVER_PATH].auth
    assert isinstance(receiver, Credentials) and receiver.bearer_token == SecretStr("am-t0ken")
    assert isinstance(demo.webhook.api_auth, Credentials)
    assert demo.webhook.api_auth.bearer_token == SecretStr("api-t0ken")
    assert demo.operator.api_auth == demo.webhook.api_auth  # the operator API's default


def test_without_credentials_the_demo_is_open_and_says_so() -> None:
    demo = running().configure(parse_settings({}))
    assert demo.webhook.receivers[DEFAULT_RECEIVER_PATH].auth == "none"
    assert demo.webhook.api_auth == "none"
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    common = {"usage_db_url": "sqlite+aiosqlite:///u.db", "webhook": True, "now": now}
    open_block = startup_block("http://127.0.0.1:9877", URLS, **common)  # type: ignore[arg-type]
    assert "(no auth in the demo)" in open_block
    closed = startup_block(  # type: ignore[arg-type]
        "http://127.0.0.1:9877", URLS, webhook_auth=True, **common
    )
    assert "no auth" not in closed and "credentials from the config" in closed
    assert "-H 'Authorization: Bearer" in closed  # the sample curl says it needs them
