"""`serve --demo` keeps the webhook and API credentials a config file sets; only without any
does the demo run them open, and its start-up block says which."""

from datetime import UTC, datetime
from pathlib import Path

import yaml
from pydantic import SecretStr

from tensafe_ops.cli import _demo_stack_recipe, _operator_auth
from tensafe_ops.sandbox.banner import startup_block
from tensafe_ops.sandbox.server import RunningWorld, demo_has_auth, demo_receiver
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
        "http://127.0.0.1:9877",
        URLS,
        webhook_auth=True,
        alerts_api_auth=True,
        operator_auth=True,
        **common,
    )
    assert "no auth" not in closed and "credentials from the config" in closed
    assert "-H 'Authorization: Bearer" in closed  # the sample curl says it needs them


def test_open_receivers_with_an_api_token_print_a_tensafe_admin_line_with_token(
    tmp_path: Path,
) -> None:
    """What the block says follows each part's own credentials: the receiver Alertmanager
    sends to (at its configured path), the webhook's API, the operator API."""
    configured = parse_settings(
        {
            "server": {"state_dir": str(tmp_path)},
            "webhook": {
                "receivers": {"/hooks/am": {"auth": "none"}},
                "api_auth": {"bearer_token": "api-t0ken"},
            },
        }
    )
    demo = running().configure(configured)
    assert demo_receiver(demo) == "/hooks/am" and not demo_has_auth(demo)
    assert _operator_auth(demo)
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    text = startup_block(
        "http://127.0.0.1:9877",
        URLS,
        usage_db_url="sqlite+aiosqlite:///u.db",
        webhook=True,
        now=now,
        receiver_path=demo_receiver(demo),
        webhook_auth=demo_has_auth(demo),
        alerts_api_auth=True,
        operator_auth=_operator_auth(demo),
    )
    assert "Webhook        POST http://127.0.0.1:9877/hooks/am  (no auth in the demo)" in text
    assert "/api/v1/deliveries  (credentials from the config)" in text
    assert "curl -sS -X POST http://127.0.0.1:9877/hooks/am -H 'Content-Type" in text
    assert "operator API, credentials from the config" in text
    assert "--url http://127.0.0.1:9877 --token <your API token>" in text
    _demo_stack_recipe(demo, 9877, URLS)
    am = yaml.safe_load((tmp_path / "stack" / "alertmanager.yml").read_text())
    sent_to = {w["url"] for r in am["receivers"] for w in r.get("webhook_configs", [])}
    assert sent_to == {"http://127.0.0.1:9877/hooks/am"}


def test_the_demo_sends_to_the_default_receiver_when_it_is_configured() -> None:
    configured = parse_settings(
        {
            "webhook": {
                "receivers": {
                    "/hooks/other": {"auth": {"bearer_token": "other-t0ken"}},
                    DEFAULT_RECEIVER_PATH: {"auth": "none"},
                },
                "api_auth": "none",
            }
        }
    )
    demo = running().configure(configured)
    assert demo_receiver(demo) == DEFAULT_RECEIVER_PATH and not demo_has_auth(demo)
    assert not _operator_auth(demo)
