"""The OpenAPI 3.1 document of every HTTP endpoint of the process, served at
`/api/v1/openapi.json`: the operator API, the webhook's receiver and management API, and the
service's own /metrics, /healthz and /readyz. `spec_for(app)` keeps only the operations the app
actually serves (the webhook may be off, the PagerDuty webhook is on only with secrets), so
the document is true of the deployment that serves it. tests/operations/test_openapi.py runs
schemathesis against a live service with it.
"""

from typing import Any

from aiohttp import web

from tensafe_ops import __version__

Schema = dict[str, Any]


def nullable(kind: str | list[str], **extra: Any) -> Schema:
    kinds = [kind] if isinstance(kind, str) else kind
    return {"type": [*kinds, "null"], **extra}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


STR, NUM, INT, BOOL = (
    {"type": "string"},
    {"type": "number"},
    {"type": "integer"},
    {"type": "boolean"},
)
TIME = {"type": "string", "format": "date-time"}
N_TIME, N_NUM, N_INT, N_STR = (
    nullable("string"),
    nullable("number"),
    nullable("integer"),
    nullable("string"),
)
N_BOOL = nullable("boolean")
ANY_OBJ: Schema = {"type": "object"}
BAND = {"type": "string", "enum": ["healthy", "warning", "critical", "unknown", "info"]}
LIGHT = {"type": "string", "enum": ["green", "yellow", "red", "unknown"]}
STATE = {"type": "string", "enum": ["done", "failed", "open", "unknown"]}
DAY_PARAM = {
    "name": "date",
    "in": "path",
    "required": True,
    "description": "today, yesterday or YYYY-MM-DD (UTC days)",
    "schema": {"type": "string", "pattern": r"^(today|yesterday|\d{4}-\d{2}-\d{2})$"},
}
ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}

SCHEMAS: dict[str, Schema] = {
    "Error": obj({"error": STR}, {"field": STR, "detail": STR}),
    "Prometheus": obj({"configured": BOOL, "url": N_STR, "reachable": N_BOOL, "error": N_STR}),
    "Tile": obj(
        {
            "key": STR,
            "label": STR,
            "panel": STR,
            "value": N_NUM,
            "unit": STR,
            "display": STR,
            "band": BAND,
            "in_traffic_light": BOOL,
            "healthy": N_STR,
            "warning": N_STR,
            "critical": N_STR,
            "action": N_STR,
            "query": STR,
            "error": N_STR,
        }
    ),
    "SourceFreshness": obj(
        {
            "source": STR,
            "up": BOOL,
            "last_success": N_TIME,
            "age_seconds": N_NUM,
            "interval_seconds": NUM,
            "stale": BOOL,
        }
    ),
    "OpenAlert": obj(
        {
            "id": INT,
            "alertname": STR,
            "severity": STR,
            "summary": STR,
            "respond_by": STR,
            "seconds_left": N_NUM,
            "overdue_seconds": N_NUM,
            "acknowledged_by": N_STR,
            "acknowledged_at": N_STR,
        },
        {"starts_at": N_STR},
    ),
    "Ticket": obj(
        {
            "id": INT,
            "subject": STR,
            "priority": STR,
            "status": STR,
            "created_at": STR,
            "age_seconds": NUM,
            "account": N_STR,
            "account_name": N_STR,
            "answered": BOOL,
            "breaching": BOOL,
        }
    ),
    "Status": obj(
        {
            "taken_at": TIME,
            "light": LIGHT,
            "exit_code": {"type": "integer", "enum": [0, 1, 2, 3]},
            "reasons": arr(STR),
            "panels": arr(obj({"key": STR, "label": STR})),
            "tiles": arr(ref("Tile")),
            "prometheus": ref("Prometheus"),
            "sources": arr(ref("SourceFreshness")),
            "webhook": obj({"enabled": BOOL}),
            "alerts": arr(ref("OpenAlert")),
            "tickets": arr(ref("Ticket")),
            "checklist": nullable("object"),
        }
    ),
    "SupportSummary": obj(
        {
            "taken_at": TIME,
            "available": BOOL,
            "priorities": arr(
                obj(
                    {
                        "priority": {"type": "string", "enum": ["p1", "p2", "p3", "p4"]},
                        "label": STR,
                        "sla_seconds": N_NUM,
                        "sla": N_STR,
                        "action": STR,
                        "open": N_INT,
                        "breaching": N_INT,
                        "oldest_unanswered_seconds": N_NUM,
                        "solved_24h": N_INT,
                    }
                )
            ),
            "open_p1_p2": arr(ref("Ticket")),
            "open_p1_p2_total": INT,
            "unanswered_over_24h": arr(ref("Ticket")),
            "unanswered_over_24h_total": INT,
            "created_24h": N_INT,
            "solved_24h": N_INT,
            "patterns": obj(
                {
                    "min_tickets": INT,
                    "tags": arr(obj({"tag": STR, "count": INT})),
                    "subjects": arr(
                        obj({"pattern": STR, "count": INT, "ticket_ids": arr(INT), "example": STR})
                    ),
                }
            ),
            "answers": obj(
                {"p1_p2_open": N_BOOL, "unanswered_over_24h": N_BOOL, "recurring_patterns": N_BOOL}
            ),
            "sources": arr(ref("SourceFreshness")),
        }
    ),
    "Customer": obj(
        {
            "account": STR,
            "name": STR,
            "tier": N_STR,
            "score": N_INT,
            "band": N_STR,
            "last_active": N_TIME,
            "mrr": NUM,
            "plan": N_STR,
            "enterprise": BOOL,
            "past_due": BOOL,
            "open_tickets": N_INT,
            "breaching_tickets": N_INT,
            "signals": arr(obj({"signal": STR, "penalty": INT, "text": STR})),
            "risk_indicators": arr(STR),
            "suggested_action": STR,
        }
    ),
    "Customers": obj(
        {
            "taken_at": TIME,
            "available": BOOL,
            "band": N_STR,
            "currency": N_STR,
            "bands": {
                "type": "object",
                "additionalProperties": obj({"customers": INT, "mrr": NUM}),
            },
            "at_risk_below": N_INT,
            "total": INT,
            "offset": INT,
            "limit": INT,
            "customers": arr(ref("Customer")),
            "sources": arr(ref("SourceFreshness")),
        }
    ),
    "Enterprise": obj(
        {
            "taken_at": TIME,
            "threshold_mrr": N_NUM,
            "currency": N_STR,
            "uptime_24h": N_NUM,
            "uptime_sla": NUM,
            "platform_open_incidents": N_INT,
            "upcoming_maintenance": arr(ANY_OBJ),
            "people_checks": arr(STR),
            "customers": arr(
                {
                    "allOf": [
                        ref("Customer"),
                        obj(
                            {
                                "checks": obj(
                                    {
                                        "healthy": N_BOOL,
                                        "no_breaching_tickets": N_BOOL,
                                        "uptime_sla": N_BOOL,
                                        "maintenance_communicated": BOOL,
                                    }
                                ),
                                "ok": BOOL,
                            }
                        ),
                    ]
                }
            ),
        }
    ),
    "CheckItem": obj(
        {
            "key": STR,
            "text": STR,
            "answered_by": {"type": "string", "enum": ["data", "people"]},
            "state": STATE,
            "detail": STR,
        },
        {"section": STR, "marks": arr(ref("Mark"))},
    ),
    "Incident": obj(
        {
            "id": STR,
            "number": N_INT,
            "title": STR,
            "status": STR,
            "urgency": N_STR,
            "priority": STR,
            "service": N_STR,
            "created_at": STR,
            "acknowledged_at": N_STR,
            "resolved_at": N_STR,
            "assignees": arr(STR),
            "html_url": N_STR,
            "opened_before_window": BOOL,
            "post_mortem_needed": BOOL,
            "checklist": arr(ref("CheckItem")),
        }
    ),
    "Incidents": obj(
        {
            "taken_at": TIME,
            "since": TIME,
            "available": BOOL,
            "incidents": arr(ref("Incident")),
            "opened_in_window": INT,
            "open_total": N_INT,
        }
    ),
    "KeyNumber": obj(
        {
            "key": STR,
            "label": STR,
            "unit": STR,
            "yesterday": N_NUM,
            "yesterday_source": nullable(
                "string", enum=["daily_record", "prometheus_24h_ago", None]
            ),
            "today": N_NUM,
            "trend": {"type": "string", "enum": ["up", "down", "flat", "unknown"]},
            "change": N_NUM,
            "change_percent": N_NUM,
            "concern_if": STR,
            "concern": N_BOOL,
        }
    ),
    "MorningSnapshot": obj(
        {
            "taken_at": TIME,
            "day": STR,
            "rows": arr(ref("KeyNumber")),
            "concerns": arr(STR),
            "prometheus": ref("Prometheus"),
        }
    ),
    "SummaryRow": obj(
        {
            "key": STR,
            "label": STR,
            "actual": N_NUM,
            "unit": STR,
            "target": N_NUM,
            "target_text": STR,
            "status": {"type": "string", "enum": ["met", "missed", "no_target", "unknown"]},
        }
    ),
    "DailySummary": obj(
        {
            "taken_at": TIME,
            "day": STR,
            "window": STR,
            "business": arr(ref("SummaryRow")),
            "operational": arr(ref("SummaryRow")),
            "prometheus": ref("Prometheus"),
        }
    ),
    "KeyMetric": obj({"label": STR, "value": N_NUM, "display": STR}),
    "Daily": obj(
        {
            "day": STR,
            "live": BOOL,
            "recorded_at": N_TIME,
            "morning_recorded_at": N_TIME,
            "summary": ref("DailySummary"),
            "morning_snapshot": ref("MorningSnapshot"),
            "key_metrics": {"type": "object", "additionalProperties": ref("KeyMetric")},
        }
    ),
    "Recorded": obj(
        {
            "day": STR,
            "recorded_at": TIME,
            "summary": ref("DailySummary"),
            "posted_delivery_id": N_INT,
        }
    ),
    "Pulse": obj(
        {
            "taken_at": TIME,
            "since": TIME,
            "morning_recorded": BOOL,
            "light_then": nullable("string"),
            "light_now": LIGHT,
            "changes": arr(
                obj(
                    {
                        "key": STR,
                        "label": STR,
                        "unit": STR,
                        "morning": N_NUM,
                        "now": N_NUM,
                        "change": N_NUM,
                        "morning_display": STR,
                        "now_display": STR,
                        "change_display": STR,
                    }
                )
            ),
            "new_alerts": arr(ref("OpenAlert")),
            "traffic": ref("Traffic"),
            "queue": obj({"depth": N_NUM, "limit": INT, "within": N_BOOL}),
            "events_today": arr(ref("Event")),
            "prometheus": ref("Prometheus"),
            "answers": obj(
                {"new_alerts": N_BOOL, "traffic_normal": N_BOOL, "queue_within_limits": N_BOOL}
            ),
        }
    ),
    "Traffic": obj(
        {
            "requests_per_second": N_NUM,
            "peak_7d": N_NUM,
            "share_of_peak_percent": N_NUM,
            "band": obj({"hours_utc": STR, "expected": STR, "alert_if": STR}),
            "unusual": N_BOOL,
        }
    ),
    "Capacity": obj(
        {
            "taken_at": TIME,
            "resources": arr(
                obj(
                    {
                        "key": STR,
                        "label": STR,
                        "value": N_NUM,
                        "display": STR,
                        "threshold": NUM,
                        "threshold_text": STR,
                        "over": N_BOOL,
                        "action": N_STR,
                    }
                )
            ),
            "p95_latency_ms": N_NUM,
            "active_pods": N_NUM,
            "decision": obj(
                {
                    "action": {
                        "type": "string",
                        "enum": ["scale_up", "scale_down", "hold", "unknown"],
                    },
                    "pods_now": N_INT,
                    "pods_target": N_INT,
                    "reasons": arr(STR),
                    "rule": STR,
                }
            ),
            "events_next_24h": arr(ref("Event")),
            "pre_scale_advice": arr(STR),
            "within_limits": N_BOOL,
            "prometheus": ref("Prometheus"),
        }
    ),
    "Handoff": obj(
        {
            "taken_at": TIME,
            "day": STR,
            "shift": {"type": "string", "enum": ["night", "day"]},
            "shift_starts": TIME,
            "status": {"type": "string", "enum": ["GREEN", "YELLOW", "RED", "UNKNOWN"]},
            "reasons": arr(STR),
            "open_issues": arr(STR),
            "watch_items": arr(STR),
            "tomorrow_events": arr(STR),
            "contacts": obj({"day": arr(STR), "night": arr(STR)}),
            "markdown": STR,
            "slack": STR,
        },
        {"delivery_id": INT, "destination": STR},
    ),
    "Mark": obj({"id": INT, "day": STR, "step": STR, "by": STR, "note": STR, "at": TIME}),
    "Checklist": obj(
        {
            "day": STR,
            "taken_at": N_TIME,
            "live": BOOL,
            "sections": arr(
                obj({"key": STR, "title": STR, "state": STATE, "items": arr(ref("CheckItem"))})
            ),
            "progress": obj(
                {"done": INT, "failed": INT, "open": INT, "unknown": INT, "total": INT}
            ),
            "key_metrics": {"type": "object", "additionalProperties": ref("KeyMetric")},
            "notes": arr(STR),
            "people_steps": arr(STR),
            "markdown": STR,
        }
    ),
    "Event": obj(
        {
            "id": INT,
            "start": TIME,
            "end": TIME,
            "kind": {
                "type": "string",
                "enum": ["maintenance", "demo", "onboarding", "campaign", "spike", "other"],
            },
            "note": STR,
            "communicated": BOOL,
            "by": STR,
            "created_at": TIME,
        }
    ),
    # -- webhook ---------------------------------------------------------------------------
    "Alert": obj(
        {
            "id": INT,
            "fingerprint": STR,
            "alertname": STR,
            "severity": {"type": "string", "enum": ["critical", "warning", "info"]},
            "state": {"type": "string", "enum": ["firing", "resolved", "stale"]},
            "summary": STR,
            "labels": {"type": "object", "additionalProperties": STR},
            "annotations": {"type": "object", "additionalProperties": STR},
            "routes": arr(STR),
            "starts_at": STR,
            "first_received_at": STR,
            "last_seen_at": STR,
            "respond_by": STR,
            "seconds_left": N_NUM,
            "overdue_seconds": N_NUM,
            "breached": BOOL,
            "acknowledged_by": N_STR,
            "acknowledged_at": N_STR,
            "acknowledged_via": N_STR,
            "ack_note": N_STR,
            "resolved_at": N_STR,
            "closed_at": N_STR,
            "maintenance_id": N_INT,
        },
        {"held_back": arr(STR), "pagerduty_incident_key": STR},
    ),
    "MaintenanceWindow": obj(
        {
            "id": INT,
            "start": STR,
            "end": STR,
            "matchers": arr(STR),
            "reason": STR,
            "by": STR,
            "created_at": STR,
        }
    ),
    "Delivery": obj(
        {
            "id": INT,
            "alert_id": INT,
            "target": {"type": "string", "enum": ["pagerduty", "slack", "zendesk"]},
            "destination": STR,
            "kind": STR,
            "state": {"type": "string", "enum": ["pending", "sending", "sent", "dead"]},
            "attempts": INT,
            "idempotency_key": STR,
            "created_at": STR,
            "updated_at": STR,
            "not_before": N_STR,
            "sent_at": N_STR,
            "last_status": N_INT,
            "last_error": N_STR,
            "payload": ANY_OBJ,
        }
    ),
    "AlertmanagerNotification": obj(
        {
            "version": STR,
            "groupKey": STR,
            "status": {"type": "string", "enum": ["firing", "resolved"]},
            "receiver": STR,
            "groupLabels": {"type": "object", "additionalProperties": STR},
            "commonLabels": {"type": "object", "additionalProperties": STR},
            "commonAnnotations": {"type": "object", "additionalProperties": STR},
            "externalURL": STR,
            "alerts": arr(
                obj(
                    {
                        "status": {"type": "string", "enum": ["firing", "resolved"]},
                        "labels": {"type": "object", "additionalProperties": STR},
                        "annotations": {"type": "object", "additionalProperties": STR},
                        "startsAt": TIME,
                        "endsAt": TIME,
                        "generatorURL": STR,
                        "fingerprint": STR,
                    }
                )
            ),
        },
        {"truncatedAlerts": {"type": "integer", "minimum": 0}},
    ),
}


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Invalid input; `field` names it",
        401: "Missing or wrong credentials",
        403: "Read-only credentials used to write",
        404: "Not found",
        409: "Conflicts with the current state",
        413: "Body too large",
        503: "State store unavailable; retry later",
    }
    return {str(code): _json(ref("Error"), text[code]) for code in codes}


def _read(summary: str, schema: str, params: list[Schema] | None = None, *extra: int) -> Schema:
    responses = {"200": _json(ref(schema), summary), **_errors(400, 401, 503, *extra)}
    return {
        "summary": summary,
        "parameters": params or [],
        "responses": responses,
        "security": SECURITY,
    }


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _body(schema: Schema, required: bool = True) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}, {}]
LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many")
PAGE = [
    _query("cursor", STR, "the next page: take it from `next` (opaque)"),
    _query("since", TIME, "recorded at or after this time (RFC 3339 with a zone)"),
    _query("until", TIME, "recorded before this time (RFC 3339 with a zone, after since)"),
]
"""Paging of the webhook's lists (docs/webhook.md#paging); the answer's `next` is the URL of
the following page, or null on the last."""
PAGED = {"AlertList", "DeliveryList"}
PROMETHEUS_HEADER = {
    "name": "X-Prometheus-URL",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "Ask this (loopback) Prometheus instead, when operator.prometheus_override "
    "allows it; 400 otherwise.",
}


PAGE_SECURITY: list[dict[str, list[str]]] = [{"session": []}, *SECURITY]
HTML = {"text/html": {"schema": STR}}
SEE_OTHER = {
    "description": "Go to `Location` (a path on this site)",
    "headers": {"Location": {"schema": STR}},
}


def _page(summary: str) -> Schema:
    return {
        "summary": summary,
        "security": PAGE_SECURITY,
        "responses": {
            "200": {"description": "The page", "content": HTML},
            "401": {"description": "The sign-in form", "content": HTML},
            "503": {
                "description": "The state store is unavailable",
                "content": {"text/plain": {"schema": STR}},
            },
        },
    }


def _pages() -> dict[str, dict[str, Schema]]:
    """The status pages (operations.pages): HTML for people, on the same data as the API."""
    form = obj({}, {"token": STR, "username": STR, "password": STR, "next": STR})
    return {
        "/status": {"get": _page("The status board: the Traffic Light, tiles, alerts, tickets")},
        "/customers": {"get": _page("Customer health: bands, trend, at-risk and enterprise")},
        "/checklist": {"get": _page("Today's checklist: the data's answers and people's ticks")},
        "/login": {
            "get": {
                "summary": "The sign-in form (a redirect when the pages need no credentials)",
                "parameters": [_query("next", STR, "where to go after signing in (a path)")],
                "responses": {
                    "200": {"description": "The form", "content": HTML},
                    "303": SEE_OTHER,
                },
            },
            "post": {
                "summary": "Sign in with the API's token, or user name and password: sets the "
                "session cookie",
                "requestBody": {
                    "required": False,
                    "content": {"application/x-www-form-urlencoded": {"schema": form}},
                },
                "responses": {
                    "303": SEE_OTHER,
                    "401": {"description": "Not accepted: the form again", "content": HTML},
                },
            },
        },
        "/logout": {
            "post": {
                "summary": "Sign out (clears the session cookie)",
                "responses": {"303": SEE_OTHER},
            }
        },
        "/pages/static/{name}": {
            "get": {
                "summary": "The pages' stylesheet, script and icon",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": STR},
                    _query("v", STR, "content hash: cached for good when it matches"),
                ],
                "responses": {
                    "200": {
                        "description": "The file",
                        "content": {
                            kind: {"schema": STR}
                            for kind in ("text/css", "text/javascript", "image/svg+xml")
                        },
                    },
                    "404": {"description": "No such file"},
                },
            }
        },
    }


def _paths() -> dict[str, dict[str, Schema]]:
    text_ok = {"200": {"description": "OK", "content": {"text/plain": {"schema": STR}}}}
    return {
        **_pages(),
        "/": {
            "get": {
                "summary": "An index page linking the endpoints",
                "responses": {
                    "200": {"description": "HTML", "content": {"text/html": {"schema": STR}}}
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (cached business metrics and live self-metrics)",
                "responses": text_ok,
            }
        },
        "/healthz": {
            "get": {
                "summary": "The process is alive",
                "responses": {"200": _json(obj({"status": STR}), "alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "State DB reachable, config loaded",
                "responses": {
                    "200": _json(obj({"status": STR}), "ready"),
                    "503": _json(obj({"status": STR}), "not ready"),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _json(ANY_OBJ, "OpenAPI 3.1")}}
        },
        "/api/v1/status": {
            "get": _read(
                "The Traffic Light, the four panels' tiles, open alerts, "
                "open P1/P2 tickets and the sources' freshness",
                "Status",
                [PROMETHEUS_HEADER],
            )
        },
        "/api/v1/incidents": {
            "get": _read(
                "PagerDuty incidents created since `since` (and all open ones), each with Step 2's "
                "checklist",
                "Incidents",
                [
                    _query(
                        "since", {"type": "string"}, "8h, 30m, 2d or an RFC 3339 time (default 8h)"
                    )
                ],
            )
        },
        "/api/v1/support/summary": {
            "get": _read(
                "Tickets by priority with SLA targets, open P1/P2, unanswered over 24 h, patterns",
                "SupportSummary",
            )
        },
        "/api/v1/customers": {
            "get": _read(
                "Customers by health (lowest score first), with band totals",
                "Customers",
                [
                    _query(
                        "band", {"type": "string", "enum": ["at_risk", "watch", "healthy"]}, "band"
                    ),
                    LIMIT,
                    _query(
                        "offset", {"type": "integer", "minimum": 0, "maximum": 1_000_000}, "skip"
                    ),
                ],
            )
        },
        "/api/v1/customers/enterprise": {
            "get": _read("Step 6 per enterprise customer", "Enterprise", [PROMETHEUS_HEADER])
        },
        "/api/v1/metrics/morning-snapshot": {
            "get": _read(
                "Step 3: yesterday vs today with the concern rules",
                "MorningSnapshot",
                [PROMETHEUS_HEADER],
            )
        },
        "/api/v1/pulse": {
            "get": _read(
                "Step 7: changes since the morning, new alerts, traffic vs "
                "the hour's expected share of peak, queue depth",
                "Pulse",
                [PROMETHEUS_HEADER],
            )
        },
        "/api/v1/capacity": {
            "get": _read(
                "Step 8: resources against thresholds and the scaling decision",
                "Capacity",
                [PROMETHEUS_HEADER],
            )
        },
        "/api/v1/daily/{date}": {
            "get": _read(
                "Step 9: a day's summary (today: live; earlier: the stored record)",
                "Daily",
                [DAY_PARAM],
                404,
            ),
            "post": {
                "summary": "Store today's record now (also stored nightly at operator.record_at)",
                "parameters": [DAY_PARAM],
                "requestBody": _body(obj({}, {"post": BOOL}), required=False),
                "responses": {
                    "201": _json(ref("Recorded"), "stored"),
                    **_errors(400, 401, 403, 503),
                },
                "security": SECURITY,
            },
        },
        "/api/v1/oncall/handoff": {
            "get": _read(
                "Step 11: the handoff message",
                "Handoff",
                [_query("shift", {"type": "string", "enum": ["night", "day"]}, "shift")],
            ),
            "post": {
                "summary": "Post the handoff to Slack through the webhook's outbox",
                "requestBody": _body(
                    obj(
                        {},
                        {
                            "shift": {"type": "string", "enum": ["night", "day"]},
                            "by": {"type": "string", "minLength": 1, "maxLength": 200},
                        },
                    ),
                    required=False,
                ),
                "responses": {
                    "201": _json(ref("Handoff"), "queued"),
                    **_errors(400, 401, 403, 409, 503),
                },
                "security": SECURITY,
            },
        },
        "/api/v1/checklist/{date}": {
            "get": _read(
                "Part 7's template, filled (Markdown in `markdown`)", "Checklist", [DAY_PARAM], 404
            )
        },
        "/api/v1/checklist/{date}/done": {
            "post": {
                "summary": "Record that a person did a step",
                "parameters": [DAY_PARAM],
                "requestBody": _body(
                    obj(
                        {
                            "step": {"type": "string", "minLength": 1, "maxLength": 128},
                            "by": {"type": "string", "minLength": 1, "maxLength": 200},
                        },
                        {"note": {"type": "string", "maxLength": 2000}},
                    )
                ),
                "responses": {"201": _json(ref("Mark"), "recorded"), **_errors(400, 401, 403, 503)},
                "security": SECURITY,
            }
        },
        "/api/v1/events": {
            "get": _read(
                "Planned events overlapping [from, to)",
                "EventList",
                [
                    _query("from", {"type": "string"}, "RFC 3339 or a duration back (default now)"),
                    _query("to", {"type": "string"}, "RFC 3339 (default 30 days ahead)"),
                ],
            ),
            "post": {
                "summary": "Add a planned event (maintenance, demo, campaign, expected spike)",
                "requestBody": _body(
                    obj(
                        {
                            "start": TIME,
                            "end": TIME,
                            "kind": SCHEMAS["Event"]["properties"]["kind"],
                            "note": {"type": "string", "minLength": 1, "maxLength": 1000},
                        },
                        {
                            "communicated": BOOL,
                            "by": {"type": "string", "minLength": 1, "maxLength": 200},
                        },
                    )
                ),
                "responses": {"201": _json(ref("Event"), "added"), **_errors(400, 401, 403, 503)},
                "security": SECURITY,
            },
        },
        "/api/v1/events/{id}": {
            "patch": {
                "summary": "Mark an event communicated (or not)",
                "parameters": [ID_PARAM],
                "requestBody": _body(obj({"communicated": BOOL})),
                "responses": {
                    "200": _json(ref("Event"), "updated"),
                    **_errors(400, 401, 403, 404, 503),
                },
                "security": SECURITY,
            },
            "delete": {
                "summary": "Remove an event",
                "parameters": [ID_PARAM],
                "responses": {
                    "200": _json(obj({"id": INT, "removed": BOOL}), "removed"),
                    **_errors(400, 401, 403, 404, 503),
                },
                "security": SECURITY,
            },
        },
        # -- the webhook ---------------------------------------------------------------------
        "/api/v1/alerts": {
            "post": {
                "summary": "Alertmanager webhook receiver (2xx once durably journaled)",
                "requestBody": _body(ref("AlertmanagerNotification")),
                "responses": {
                    "200": _json(obj({"status": STR, "alerts": INT, "id": INT}), "accepted"),
                    **_errors(400, 401, 413, 503),
                },
                "security": SECURITY,
            },
            "get": _read(
                "Alerts with their respond-by position",
                "AlertList",
                [
                    _query(
                        "state",
                        {"type": "string", "enum": ["firing", "resolved", "stale"]},
                        "state",
                    ),
                    _query(
                        "severity",
                        {"type": "string", "enum": ["critical", "warning", "info"]},
                        "severity",
                    ),
                    LIMIT,
                    *PAGE,
                ],
            ),
        },
        "/api/v1/alerts/{id}/ack": {
            "post": {
                "summary": "Acknowledge an alert",
                "parameters": [ID_PARAM],
                "requestBody": _body(
                    obj(
                        {"by": {"type": "string", "minLength": 1, "maxLength": 200}},
                        {"note": {"type": "string", "maxLength": 2000}},
                    )
                ),
                "responses": {
                    "200": _json(ref("Alert"), "acknowledged"),
                    **_errors(400, 401, 403, 404, 409, 503),
                },
                "security": SECURITY,
            }
        },
        "/api/v1/maintenance": {
            "get": _read(
                "Maintenance windows (current and future; all=true: past too)",
                "MaintenanceList",
                [
                    _query(
                        "all",
                        {"type": "string", "enum": ["true", "false", "1", "0"]},
                        "include past windows",
                    )
                ],
            ),
            "post": {
                "summary": "Add a maintenance window: matching pages become Slack notes",
                "requestBody": _body(
                    obj(
                        {
                            "start": TIME,
                            "end": TIME,
                            "matchers": {"type": "array", "minItems": 1, "items": STR},
                            "reason": {"type": "string", "minLength": 1, "maxLength": 500},
                        },
                        {"by": {"type": "string", "maxLength": 200}},
                    )
                ),
                "responses": {
                    "201": _json(ref("MaintenanceWindow"), "added"),
                    **_errors(400, 401, 403, 503),
                },
                "security": SECURITY,
            },
        },
        "/api/v1/maintenance/{id}": {
            "delete": {
                "summary": "Delete a maintenance window",
                "parameters": [ID_PARAM],
                "responses": {"204": {"description": "deleted"}, **_errors(401, 403, 404, 503)},
                "security": SECURITY,
            }
        },
        "/api/v1/maintenance/{id}/end": {
            "post": {
                "summary": "End a running maintenance window now",
                "parameters": [ID_PARAM],
                "responses": {
                    "200": _json(ref("MaintenanceWindow"), "ended"),
                    **_errors(401, 403, 404, 409, 503),
                },
                "security": SECURITY,
            }
        },
        "/api/v1/deliveries": {
            "get": _read(
                "Outbox deliveries (state=dead: dead letters)",
                "DeliveryList",
                [
                    _query(
                        "state",
                        {"type": "string", "enum": ["pending", "sending", "sent", "dead"]},
                        "state",
                    ),
                    LIMIT,
                    *PAGE,
                ],
            )
        },
        "/api/v1/deliveries/{id}/retry": {
            "post": {
                "summary": "Put a dead letter back in the outbox",
                "parameters": [ID_PARAM],
                "responses": {
                    "200": _json(ref("Delivery"), "pending again"),
                    **_errors(401, 403, 404, 409, 503),
                },
                "security": SECURITY,
            }
        },
        "/api/v1/notifications/failed": {
            "get": _read(
                "Alertmanager notifications set aside after failing to ingest",
                "FailedList",
                [LIMIT],
            )
        },
        "/api/v1/notifications/{id}/retry": {
            "post": {
                "summary": "Put a set-aside notification back in line",
                "parameters": [ID_PARAM],
                "responses": {
                    "200": _json(obj({"id": INT, "state": STR}), "pending again"),
                    **_errors(401, 403, 404, 503),
                },
                "security": SECURITY,
            }
        },
        "/api/v1/pagerduty/webhook": {
            "post": {
                "summary": "PagerDuty webhooks v3 (signed): acknowledged/resolved incidents answer "
                "their alert",
                "requestBody": _body(ANY_OBJ),
                "responses": {
                    "200": _json(obj({"status": STR}), "applied or ignored"),
                    **_errors(400, 401, 413, 503),
                },
            }
        },
    }


LISTS = {
    "EventList": ("events", "Event"),
    "AlertList": ("alerts", "Alert"),
    "MaintenanceList": ("windows", "MaintenanceWindow"),
    "DeliveryList": ("deliveries", "Delivery"),
}


def full_spec() -> Schema:
    schemas = dict(SCHEMAS)
    for name, (key, item) in LISTS.items():
        paging = {"next": N_STR} if name in PAGED else {}
        schemas[name] = obj({key: arr(ref(item)), **paging})
    schemas["FailedList"] = obj(
        {
            "notifications": arr(
                obj(
                    {
                        "id": INT,
                        "received_at": STR,
                        "attempts": INT,
                        "last_error": N_STR,
                        "body": STR,
                    }
                )
            )
        }
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tensafe-ops",
            "version": __version__,
            "description": "The operator API (the daily operations checklist), the Alertmanager "
            "webhook and its management API. Times are RFC 3339 UTC; days are UTC dates.",
        },
        "paths": _paths(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
                "session": {"type": "apiKey", "in": "cookie", "name": "tensafe_ops_session"},
            },
        },
    }


def served(app: web.Application) -> set[tuple[str, str]]:
    pairs = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is not None:
            pairs.add((resource.canonical, route.method.lower()))
    return pairs


def spec_for(app: web.Application) -> Schema:
    """The document limited to the operations `app` serves."""
    spec = full_spec()
    routes = served(app)
    paths = {}
    for path, operations in spec["paths"].items():
        kept = {method: op for method, op in operations.items() if (path, method) in routes}
        if kept:
            paths[path] = kept
    spec["paths"] = paths
    return spec
