"""The demo's start-up block and `tensafe-ops sandbox`'s JSON: what a new user reads first."""

import json
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import jsonschema

from tensafe_ops.cli import _base_url
from tensafe_ops.sandbox.banner import SAMPLE_LABELS, sample_alert, startup_block
from tests.contracts import contract_document
from tests.webhook.am import fingerprint
from webhook.payload import parse_notification

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
URLS = {
    "zendesk": "http://127.0.0.1:1001",
    "pagerduty": "http://127.0.0.1:1002",
    "pagerduty_events": "http://127.0.0.1:1003",
}


def block(**overrides: object) -> str:
    options: dict[str, object] = {
        "usage_db_url": "sqlite+aiosqlite:///u.db",
        "webhook": True,
        "now": NOW,
    }
    options.update(overrides)
    return startup_block("http://127.0.0.1:9877", URLS, **options)  # type: ignore[arg-type]


def test_the_sample_alert_is_a_real_alertmanager_notification() -> None:
    body = sample_alert(NOW)
    jsonschema.validate(body, contract_document("alertmanager-webhook")["schema"])
    assert body["alerts"][0]["fingerprint"] == fingerprint(SAMPLE_LABELS)
    [alert] = parse_notification(json.dumps(body).encode()).alerts
    assert alert.labels["severity"] == "critical" and alert.starts_at == NOW


def test_the_curl_is_one_copyable_line_that_posts_the_sample() -> None:
    [curl] = [line.strip() for line in block().splitlines() if line.strip().startswith("curl ")]
    words = shlex.split(curl)
    assert words[:5] == ["curl", "-sS", "-X", "POST", "http://127.0.0.1:9877/api/v1/alerts"]
    assert words[5:7] == ["-H", "Content-Type: application/json"]
    assert words[7] == "-d" and json.loads(words[8]) == sample_alert(NOW)
    assert len(words) == 9


def test_the_block_names_every_url_the_demo_serves() -> None:
    text = block()
    assert "Metrics        http://127.0.0.1:9877/metrics" in text
    assert "Webhook        POST http://127.0.0.1:9877/api/v1/alerts  (no auth in the demo)" in text
    assert "http://127.0.0.1:9877/api/v1/deliveries" in text
    assert "PagerDuty Events   http://127.0.0.1:1003/v2/enqueue" in text
    assert "Zendesk            http://127.0.0.1:1001 " in text
    assert "sqlite+aiosqlite:///u.db" in text
    assert "Status pages" not in text
    assert (
        "  Status pages   http://127.0.0.1:9877/status  http://127.0.0.1:9877/customers  "
        "http://127.0.0.1:9877/checklist  (no sign-in)"
    ) in block(pages="open")
    assert "checklist  (sign in with the API's credentials)" in block(pages="sign-in")
    assert "<url>/_sandbox/received" in text
    assert 'static_configs: [{targets: ["127.0.0.1:9877"]}]' in text
    assert "{'" not in text and '"level"' not in text  # plain text, no reprs or log lines


def test_a_new_upstream_gets_a_line_without_touching_the_banner() -> None:
    text = startup_block(
        "http://127.0.0.1:9877",
        {**URLS, "billing_v2": "http://127.0.0.1:1009"},
        usage_db_url="sqlite+aiosqlite:///u.db",
        webhook=True,
        now=NOW,
    )
    assert "  billing_v2         http://127.0.0.1:1009" in text


def test_without_the_webhook_half_there_is_no_webhook_to_curl() -> None:
    text = block(webhook=False)
    assert "Webhook" not in text and "curl" not in text
    assert "http://127.0.0.1:9877/metrics" in text


def test_a_wildcard_listen_address_is_shown_as_loopback() -> None:
    assert _base_url("0.0.0.0", 9877) == "http://127.0.0.1:9877"
    assert _base_url("::", 9877) == "http://[::1]:9877"
    assert _base_url("10.0.0.5", 80) == "http://10.0.0.5:80"


def test_sandbox_prints_one_json_document_with_everything_to_call(tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "tensafe-ops"
    process = subprocess.Popen(
        [str(cli), "sandbox", "--scale", "0.02", "--tick", "0", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(30)
    assert set(info["urls"]) >= {"zendesk", "stripe", "pagerduty", "pagerduty_events", "slack"}
    assert info["received"]["pagerduty_events"] == (
        info["urls"]["pagerduty_events"] + "/_sandbox/received"
    )
    assert info["credentials"]["pagerduty_events"]["routing_key"]
    assert all(
        url.startswith(info["urls"]["slack"] + "/services/T")
        for url in info["credentials"]["slack"]["webhooks"].values()
    )
    assert info["usage_db_url"].startswith("sqlite+aiosqlite:///")


def test_the_prometheus_alertmanager_recipe_ends_the_block() -> None:
    recipe = "Prometheus and Alertmanager…:\n  prometheus --config.file=x & alertmanager &"
    assert block(stack_recipe=recipe).endswith(f"\n\n{recipe}\n")
    assert "Prometheus and Alertmanager" not in block()
