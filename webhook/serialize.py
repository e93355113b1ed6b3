"""Store rows -> the JSON the management API answers with (times as RFC 3339 UTC)."""

import json
from datetime import datetime
from typing import Any

from webhook.sla import seconds_left
from webhook.timebounds import from_stored


def iso(value: float | None) -> str | None:
    if value is None:
        return None
    return from_stored(value).isoformat().replace("+00:00", "Z")


def alert_json(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One alert with its SLA position: `seconds_left` while firing and unacknowledged within
    the SLA, `overdue_seconds` once past respond_by (both null when answered or closed)."""
    respond_by = from_stored(row["respond_by"])
    waiting = row["state"] == "firing" and row["acked_at"] is None
    left = seconds_left(respond_by, now) if waiting else None
    annotations = json.loads(row["annotations"])
    return {
        "id": row["id"],
        "fingerprint": row["fingerprint"],
        "alertname": row["alertname"],
        "severity": row["severity"],
        "state": row["state"],
        "summary": annotations.get("summary", ""),
        "labels": json.loads(row["labels"]),
        "annotations": annotations,
        "routes": json.loads(row["routes"]),
        "starts_at": iso(row["starts_at"]),
        "first_received_at": iso(row["first_received_at"]),
        "last_seen_at": iso(row["last_seen_at"]),
        "respond_by": iso(row["respond_by"]),
        "seconds_left": round(left, 3) if left is not None and left >= 0 else None,
        "overdue_seconds": round(-left, 3) if left is not None and left < 0 else None,
        "breached": bool(row["breached"]),
        "acknowledged_by": row["acked_by"],
        "acknowledged_at": iso(row["acked_at"]),
        "acknowledged_via": row["ack_source"],
        "ack_note": row["ack_note"],
        "resolved_at": iso(row["resolved_at"]),
        "closed_at": iso(row["closed_at"]),
        "maintenance_id": row["maintenance_id"],
        "held_back": json.loads(row["held_back"]) if row["held_back"] else [],
        "pagerduty_incident_key": row["pd_dedup_key"],
    }


def delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    payload = json.loads(row["payload"])
    payload.pop("routing_key", None)  # never shown, even though stored empty
    return {
        "id": row["id"],
        "alert_id": row["alert_id"],
        "target": row["target"],
        "destination": row["destination"],
        "kind": row["kind"],
        "state": row["state"],
        "attempts": row["attempts"],
        "idempotency_key": row["idempotency_key"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "not_before": iso(row["not_before"]),
        "sent_at": iso(row["sent_at"]),
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "payload": payload,
    }


def _stored_list(text: str) -> list[Any]:
    """A JSON list column; a row no release would write is shown as its text, not a 500."""
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    return value if isinstance(value, list) else [value]


def maintenance_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "start": iso(row["starts_at"]),
        "end": iso(row["ends_at"]),
        "matchers": _stored_list(row["matchers"]),
        "reason": row["reason"],
        "by": row["created_by"],
        "created_at": iso(row["created_at"]),
    }
