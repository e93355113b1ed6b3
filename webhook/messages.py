"""Pure renderers: one alert -> the complete request body for Slack, PagerDuty or Zendesk.

The receiver calls these at accept time and stores the result in the outbox, so what is
sent is fixed when the alert is accepted. Every text is clipped to the destination's limits:
Slack Block Kit (header <= 150 chars, section text <= 3000, <= 10 fields of <= 2000,
<= 50 blocks, button text <= 75), PagerDuty (summary <= 1024, dedup_key <= 255).
"""

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from webhook.outbox import AlertView

Urgency = Literal["high", "low"]
PagerDutySeverity = Literal["critical", "error", "warning", "info"]

SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_BUTTON_TEXT_MAX = 75
SLACK_URL_MAX = 3000
PAGERDUTY_SUMMARY_MAX = 1024

RUNBOOK_KEYS = ("runbook_url", "runbook")
ACTION_KEYS = ("immediate_action", "action")
"""Annotations read as the "immediate action" to take, in order of preference."""

_ICONS = {"firing": "🔥", "resolved": "✅", "maintenance": "🔧"}
_ZENDESK_PRIORITY = {"critical": "urgent", "warning": "high", "info": "low"}
_TAG_UNSAFE = re.compile(r"[^a-z0-9_\-]+")


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def escape_mrkdwn(text: str) -> str:
    """Slack requires &, < and > escaped in mrkdwn text (they start links and mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip_mrkdwn(text: str, limit: int) -> str:
    """Like `clip`, but never leaves half an escape entity (`&am…`) at the cut."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    amp = head.rfind("&", max(0, len(head) - 5))
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    return head + "…"


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def summary_of(alert: AlertView) -> str:
    return alert.annotations.get("summary") or alert.alertname


def runbook_url(alert: AlertView) -> str | None:
    for key in RUNBOOK_KEYS:
        value = alert.annotations.get(key, "")
        if value.startswith(("http://", "https://")):
            return value
    return None


def immediate_action(alert: AlertView) -> str | None:
    for key in ACTION_KEYS:
        if alert.annotations.get(key):
            return alert.annotations[key]
    return None


def _links(alert: AlertView) -> list[tuple[str, str]]:
    """(text, url) for the runbook, Alertmanager and Prometheus, where present and http(s)."""
    candidates = [
        ("Runbook", runbook_url(alert) or ""),
        ("Alertmanager", alert.external_url),
        ("Prometheus", alert.generator_url),
    ]
    return [
        (text, url)
        for text, url in candidates
        if url.startswith(("http://", "https://")) and len(url) <= SLACK_URL_MAX
    ]


def _state(alert: AlertView) -> str:
    if alert.maintenance_note is not None and alert.status == "firing":
        return "maintenance"
    return alert.status


def _label_lines(labels: Mapping[str, str]) -> str:
    return "\n".join(f"• `{name}` = {value}" for name, value in sorted(labels.items()))


def _mrkdwn_section(text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": clip_mrkdwn(text, SLACK_TEXT_MAX)},
    }


def _field(title: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": clip_mrkdwn(f"*{title}*\n{value}", SLACK_FIELD_MAX)}


def slack_message(alert: AlertView, channel: str | None) -> dict[str, Any]:
    """A Block Kit incoming-webhook message: header, summary and description, maintenance
    note, immediate action, key facts (severity, respond-by, started, resolved), labels,
    link buttons (runbook, Alertmanager, Prometheus) and the fingerprint. `text` is the
    notification fallback. At most 8 blocks, each within Slack's limits."""
    state = _state(alert)
    title = f"{_ICONS[state]} {state.upper()} · {alert.severity} · {alert.alertname}"
    respond_by = format_time(alert.respond_by)
    fallback = f"[{state.upper()}] {alert.severity} {alert.alertname}: {summary_of(alert)}"
    if alert.status == "firing":
        fallback += f" (respond by {respond_by})"

    description = alert.annotations.get("description", "")
    body = f"*{escape_mrkdwn(summary_of(alert))}*"
    if description:
        body += f"\n{escape_mrkdwn(description)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(title, SLACK_HEADER_MAX)}},
        _mrkdwn_section(body),
    ]
    if alert.maintenance_note is not None:
        note = escape_mrkdwn(alert.maintenance_note)
        blocks.append(_mrkdwn_section(f":wrench: *Maintenance window, not paged:* {note}"))
    action = immediate_action(alert)
    if action:
        blocks.append(_mrkdwn_section(f"*Immediate action*\n{escape_mrkdwn(action)}"))

    facts = [
        _field("Severity", alert.severity),
        _field("Respond by", respond_by),
        _field("Started", format_time(alert.starts_at)),
    ]
    if alert.status == "resolved" and alert.ends_at is not None:
        facts.append(_field("Resolved", format_time(alert.ends_at)))
    blocks.append({"type": "section", "fields": facts})
    if alert.labels:
        labels = escape_mrkdwn(_label_lines(alert.labels))
        blocks.append(_mrkdwn_section(f"*Labels*\n{labels}"))

    buttons = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": clip(text, SLACK_BUTTON_TEXT_MAX)},
            "url": url,
        }
        for text, url in _links(alert)
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": clip(f"fingerprint `{alert.fingerprint}`", 2000)}
            ],
        }
    )
    message: dict[str, Any] = {"text": clip(fallback, SLACK_TEXT_MAX), "blocks": blocks}
    if channel is not None:
        message["channel"] = channel
    return message


def pagerduty_dedup_key(fingerprint: str, starts_at: datetime) -> str:
    """One PagerDuty incident per alert occurrence (fingerprint + startsAt): the same across
    repeats, HA duplicates and the later resolve, and a new one when the alert fires again.
    An acknowledgement names the key, so it answers the firing it was made for, never a later
    one. (Occurrences stored before this scheme keep their `tensafe:<fingerprint>`.)"""
    return f"tensafe:{fingerprint}:{iso(starts_at)}"


def pagerduty_severity(severity: str, urgency: Urgency) -> PagerDutySeverity:
    """critical -> critical, info -> info; warning -> `error` when paged with high urgency,
    else `warning`. PagerDuty services with severity-based urgency page high for critical
    and error and low for warning and info, so `error` is how a warning asks for a page."""
    if severity == "critical":
        return "critical"
    if severity == "warning":
        return "error" if urgency == "high" else "warning"
    return "info"


def pagerduty_event(
    alert: AlertView,
    routing_key: str,
    action: Literal["trigger", "resolve"],
    urgency: Urgency,
) -> dict[str, Any]:
    """An Events API v2 event. `resolve` carries only the dedup key (PagerDuty ignores the
    rest). The notifier sets `routing_key` from the destination's configuration at send
    time, so the receiver may store a placeholder here and keep the key out of the outbox."""
    dedup_key = alert.incident_key or pagerduty_dedup_key(alert.fingerprint, alert.starts_at)
    if action == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    labels = alert.labels
    summary = f"[{alert.severity}] {alert.alertname}: {summary_of(alert)}"
    details: dict[str, Any] = {
        "description": alert.annotations.get("description", ""),
        "respond_by": iso(alert.respond_by),
        "fingerprint": alert.fingerprint,
        "labels": dict(labels),
        "annotations": dict(alert.annotations),
    }
    action_text = immediate_action(alert)
    if action_text:
        details["immediate_action"] = action_text
    payload: dict[str, Any] = {
        "summary": clip(summary, PAGERDUTY_SUMMARY_MAX),
        "source": labels.get("instance") or labels.get("job") or "alertmanager",
        "severity": pagerduty_severity(alert.severity, urgency),
        "timestamp": iso(alert.starts_at),
        "class": alert.alertname,
        "custom_details": details,
    }
    component = labels.get("service") or labels.get("job")
    if component:
        payload["component"] = component
    group = labels.get("namespace") or labels.get("team")
    if group:
        payload["group"] = group
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": payload,
        "client": "tensafe-ops",
        "links": [{"href": url, "text": text} for text, url in _links(alert)],
    }
    if alert.external_url.startswith(("http://", "https://")):
        event["client_url"] = alert.external_url
    return event


def zendesk_tag(text: str) -> str:
    """Zendesk tags are lower-case words without spaces."""
    return _TAG_UNSAFE.sub("_", text.lower()).strip("_")[:80]


def zendesk_ticket(alert: AlertView, due_at: datetime) -> dict[str, Any]:
    """A Create Ticket body: a `task` due at `due_at` (the respond-by time for info alerts),
    priority from severity (critical urgent, warning high, info low), an internal-note
    comment with the alert's details and links, tags for the alert name and severity, and
    `external_id` naming the alert occurrence (not unique in Zendesk: the delivery's
    Idempotency-Key is what prevents a second ticket)."""
    lines = [
        f"Alertmanager alert {alert.alertname} ({alert.severity}, {alert.status})",
        "",
        f"Summary: {summary_of(alert)}",
    ]
    description = alert.annotations.get("description")
    if description:
        lines.append(f"Description: {description}")
    action = immediate_action(alert)
    if action:
        lines.append(f"Immediate action: {action}")
    lines += [
        f"Respond by: {format_time(alert.respond_by)}",
        f"Started: {format_time(alert.starts_at)}",
    ]
    if alert.maintenance_note is not None:
        lines.append(f"Maintenance: {alert.maintenance_note}")
    lines += ["", "Labels:"] + [f"  {k}={v}" for k, v in sorted(alert.labels.items())]
    lines += [""] + [f"{text}: {url}" for text, url in _links(alert)]
    lines.append(f"Fingerprint: {alert.fingerprint}")
    tags = ["alertmanager", f"severity_{alert.severity}", zendesk_tag(f"alert_{alert.alertname}")]
    return {
        "ticket": {
            "subject": clip(f"[{alert.severity}] {alert.alertname}: {summary_of(alert)}", 250),
            "comment": {"body": "\n".join(lines), "public": False},
            "type": "task",
            "due_at": iso(due_at),
            "priority": _ZENDESK_PRIORITY[alert.severity],
            "tags": tags,
            "external_id": f"am:{alert.fingerprint}:{int(alert.starts_at.timestamp())}",
        }
    }
