"""The rendered messages: content a responder needs, within each destination's limits and
valid per the vendors' contracts."""

from datetime import timedelta
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensafe_ops.sandbox.slack_api import message_error
from tests.contracts import contract_document
from tests.webhook.alert_factory import HIGH_ERROR_RATE, STARTED, alert
from webhook.messages import (
    pagerduty_dedup_key,
    pagerduty_event,
    slack_message,
    zendesk_ticket,
)


def request_schema(contract: str, path: str) -> dict[str, Any]:
    """The JSON schema of a contract's POST request body, with its components for $refs."""
    document = contract_document(contract)
    body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return {**body["schema"], "components": document["components"]}


def all_text(message: dict[str, Any]) -> str:
    """Every string in a message, joined (what a reader could see)."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            parts.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message)
    return "\n".join(parts)


def test_slack_message_carries_what_a_responder_needs() -> None:
    message = slack_message(HIGH_ERROR_RATE, "#incidents")

    assert message_error(message) is None
    assert message["channel"] == "#incidents"
    assert message["text"].startswith("[FIRING] critical HighErrorRate: checkout 5xx ratio")
    assert "respond by 2026-11-27 12:13 UTC" in message["text"]
    assert message["blocks"][0]["text"]["text"] == "🔥 FIRING · critical · HighErrorRate"
    text = all_text(message)
    assert "5xx ratio has been above 5% for 5 minutes." in text
    assert "*Immediate action*\nRoll back the last checkout deploy." in text
    assert "*Respond by*\n2026-11-27 12:13 UTC" in text
    assert "`service` = checkout" in text
    buttons = {b["text"]["text"]: b["url"] for b in message["blocks"][-2]["elements"]}
    assert buttons == {
        "Runbook": "https://runbooks.example.com/checkout/high-error-rate",
        "Alertmanager": "http://alertmanager.monitoring.svc:9093",
        "Prometheus": HIGH_ERROR_RATE.generator_url,
    }


def test_slack_message_for_a_resolved_alert_and_a_maintenance_note() -> None:
    resolved = slack_message(
        alert(status="resolved", ends_at=STARTED + timedelta(minutes=9)), channel=None
    )
    assert "channel" not in resolved
    assert resolved["text"].startswith("[RESOLVED]")
    assert "respond by" not in resolved["text"]
    assert "*Resolved*\n2026-11-27 12:07 UTC" in all_text(resolved)

    noted = slack_message(alert(maintenance_note="DB failover <planned> & announced"), None)
    assert message_error(noted) is None
    assert noted["blocks"][0]["text"]["text"].startswith("🔧 MAINTENANCE")
    assert "not paged:* DB failover &lt;planned&gt; &amp; announced" in all_text(noted)


def test_slack_message_stays_within_block_kit_limits_for_huge_alerts() -> None:
    huge = alert(
        alertname="A" * 400,
        annotations={"summary": "s" * 5000, "description": "<&>" * 3000, "runbook_url": "x"},
        labels={f"label_{i:03d}": "v" * 100 for i in range(300)},
    )
    message = slack_message(huge, None)

    assert message_error(message) is None
    assert len(message["blocks"][0]["text"]["text"]) == 150
    assert message["blocks"][0]["text"]["text"].endswith("…")
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in message["blocks"])
    assert len(message["text"]) <= 3000
    # A runbook annotation that is not a URL gets no button (Slack refuses bad URLs).
    buttons = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Alertmanager", "Prometheus"]


texts = st.text(max_size=4000)


@settings(max_examples=150, deadline=None)
@given(
    alertname=st.text(min_size=1, max_size=300),
    summary=texts,
    description=texts,
    action=texts,
    labels=st.dictionaries(st.text(min_size=1, max_size=50), texts, max_size=40),
    note=st.none() | texts,
    status=st.sampled_from(["firing", "resolved"]),
)
def test_any_alert_renders_a_slack_message_slack_accepts(
    alertname: str,
    summary: str,
    description: str,
    action: str,
    labels: dict[str, str],
    note: str | None,
    status: str,
) -> None:
    view = alert(
        alertname=alertname,
        annotations={"summary": summary, "description": description, "immediate_action": action},
        labels=labels,
        maintenance_note=note,
        status=status,
        ends_at=STARTED,
    )
    assert message_error(slack_message(view, None)) is None
    event = pagerduty_event(view, "key", "trigger", "high")
    assert 0 < len(event["payload"]["summary"]) <= 1024


def test_pagerduty_trigger_is_valid_and_complete() -> None:
    event = pagerduty_event(HIGH_ERROR_RATE, "R" * 32, "trigger", "high")

    jsonschema.validate(event, request_schema("pagerduty-events", "/enqueue"))
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "tensafe:cba3ddb8f8c01bd6:2026-11-27T11:58:04Z"
    payload = event["payload"]
    assert (
        payload["summary"]
        == "[critical] HighErrorRate: checkout 5xx ratio above 5% on 10.0.3.17:8080"
    )
    assert payload["severity"] == "critical"
    assert payload["source"] == "10.0.3.17:8080"
    assert payload["component"] == "checkout"
    assert payload["group"] == "payments"
    assert payload["timestamp"] == "2026-11-27T11:58:04Z"
    details = payload["custom_details"]
    assert details["respond_by"] == "2026-11-27T12:13:04Z"
    assert details["labels"]["service"] == "checkout"
    assert details["immediate_action"] == "Roll back the last checkout deploy."
    assert {link["text"] for link in event["links"]} == {"Runbook", "Alertmanager", "Prometheus"}
    assert event["client_url"] == "http://alertmanager.monitoring.svc:9093"


def test_pagerduty_resolve_uses_the_same_dedup_key() -> None:
    trigger = pagerduty_event(HIGH_ERROR_RATE, "k", "trigger", "high")
    # A re-fire of the same series (new startsAt) is a new occurrence: a new incident, whose
    # acknowledgement cannot be mistaken for the first one's.
    refire = pagerduty_event(alert(starts_at=STARTED + timedelta(hours=2)), "k", "trigger", "high")
    resolve = pagerduty_event(alert(status="resolved"), "k", "resolve", "high")

    jsonschema.validate(resolve, request_schema("pagerduty-events", "/enqueue"))
    assert resolve == {
        "routing_key": "k",
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }
    assert trigger["dedup_key"] == pagerduty_dedup_key("cba3ddb8f8c01bd6", STARTED)
    assert refire["dedup_key"] == pagerduty_dedup_key(
        "cba3ddb8f8c01bd6", STARTED + timedelta(hours=2)
    )
    stored = alert(status="resolved", incident_key="tensafe:cba3ddb8f8c01bd6")  # stored earlier
    assert pagerduty_event(stored, "k", "resolve", "high")["dedup_key"] == stored.incident_key


@pytest.mark.parametrize(
    ("severity", "urgency", "expected"),
    [
        ("critical", "high", "critical"),
        ("critical", "low", "critical"),
        ("warning", "high", "error"),
        ("warning", "low", "warning"),
        ("info", "low", "info"),
    ],
)
def test_pagerduty_severity_map(severity: str, urgency: Any, expected: str) -> None:
    event = pagerduty_event(alert(severity=severity), "k", "trigger", urgency)
    assert event["payload"]["severity"] == expected


def test_pagerduty_summary_is_clipped_to_1024() -> None:
    event = pagerduty_event(alert(annotations={"summary": "x" * 5000}), "k", "trigger", "high")
    assert len(event["payload"]["summary"]) == 1024


def test_zendesk_ticket_is_a_task_due_at_respond_by() -> None:
    info = alert(
        severity="info", alertname="CertExpiringSoon", labels={"alertname": "CertExpiringSoon"}
    )
    due = STARTED + timedelta(hours=24)
    body = zendesk_ticket(info, due)

    jsonschema.validate(body, request_schema("zendesk", "/api/v2/tickets"))
    ticket = body["ticket"]
    assert ticket["type"] == "task"
    assert ticket["due_at"] == "2026-11-28T11:58:04Z"
    assert ticket["priority"] == "low"
    assert ticket["tags"] == ["alertmanager", "severity_info", "alert_certexpiringsoon"]
    assert (
        ticket["subject"]
        == "[info] CertExpiringSoon: checkout 5xx ratio above 5% on 10.0.3.17:8080"
    )
    assert ticket["comment"]["public"] is False
    comment = ticket["comment"]["body"]
    assert "Immediate action: Roll back the last checkout deploy." in comment
    assert "Runbook: https://runbooks.example.com/checkout/high-error-rate" in comment
    assert "Prometheus: http://prometheus-0:9090/graph" in comment
    assert ticket["external_id"] == f"am:cba3ddb8f8c01bd6:{int(STARTED.timestamp())}"


@pytest.mark.parametrize(("severity", "priority"), [("critical", "urgent"), ("warning", "high")])
def test_zendesk_priority_from_severity(severity: str, priority: str) -> None:
    body = zendesk_ticket(alert(severity=severity), STARTED)
    assert body["ticket"]["priority"] == priority
