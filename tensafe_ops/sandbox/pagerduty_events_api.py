"""Fake PagerDuty Events API v2 (`POST /v2/enqueue`), the webhook's paging target.

It validates events as events.pagerduty.com does (routing key, `event_action`, payload
`summary` <= 1024 chars, `source`, `severity`), answers 202 / 400 / 429 in the API's own
bodies, throttles at 120 events per minute per routing key, and keeps what was paged in an
inspectable `EventsState` (`app[EVENTS_STATE_KEY]`), one `Alert` per dedup key, so tests
assert what an operator would have seen in PagerDuty.
"""

import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from tensafe_ops.sandbox.faults import Faults, fault_middleware

RATE_LIMIT_PER_MINUTE = 120
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")

AlertStatus = Literal["triggered", "acknowledged", "resolved"]


@dataclass
class Alert:
    """One PagerDuty alert, identified by its dedup key within a routing key."""

    routing_key: str
    dedup_key: str
    status: AlertStatus
    summary: str
    severity: str
    triggers: int = 0
    """Trigger events received for this key (duplicates included)."""
    openings: int = 1
    """How many times the alert went from resolved (or absent) to triggered."""
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EventsState:
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every accepted event, in arrival order."""
    alerts: dict[tuple[str, str], Alert] = field(default_factory=dict)
    rejected: int = 0
    throttled: int = 0
    recent: dict[str, deque[float]] = field(default_factory=dict)
    """Accept times per routing key within the last minute (the throttle window)."""

    def alert(self, dedup_key: str) -> Alert | None:
        """The alert with this dedup key (whatever its routing key)."""
        for (_, key), alert in self.alerts.items():
            if key == dedup_key:
                return alert
        return None


EVENTS_STATE_KEY = web.AppKey("pagerduty_events_state", EventsState)


class InvalidEventError(Exception):
    def __init__(self, *errors: str) -> None:
        super().__init__("Event object is invalid")
        self.errors = list(errors)


def _response(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


def error_body(status: int, message: str) -> web.Response:
    """Injected failures, in the Events API's `{status, message}` shape."""
    if status == 429:
        return _response(429, {"status": "throttle event", "message": message})
    return _response(status, {"status": "error", "message": message})


def validate(event: Any, routing_keys: set[str]) -> tuple[str, str]:
    """Check one event; return (routing_key, event_action) or raise InvalidEventError."""
    if not isinstance(event, dict):
        raise InvalidEventError("Event object must be a JSON object")
    routing_key = event.get("routing_key")
    if not isinstance(routing_key, str) or not routing_key:
        raise InvalidEventError("'routing_key' is missing or blank")
    if routing_key not in routing_keys:
        raise InvalidEventError("Invalid routing key")
    action = event.get("event_action")
    if action not in EVENT_ACTIONS:
        raise InvalidEventError(
            "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"
        )
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > MAX_DEDUP_KEY):
        raise InvalidEventError(
            f"'dedup_key' must be a string of at most {MAX_DEDUP_KEY} characters"
        )
    if action != "trigger":
        if not dedup_key:
            raise InvalidEventError("'dedup_key' is missing or blank")
        return routing_key, str(action)
    payload = event.get("payload")
    if not isinstance(payload, dict):
        raise InvalidEventError("'payload' is missing or not an object")
    errors = _payload_errors(payload)
    if errors:
        raise InvalidEventError(*errors)
    return routing_key, str(action)


def _payload_errors(payload: dict[str, Any]) -> list[str]:
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > MAX_SUMMARY:
        errors.append(f"'payload.summary' must be at most {MAX_SUMMARY} characters")
    source = payload.get("source")
    if not isinstance(source, str) or not source.strip():
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in SEVERITIES:
        errors.append(
            "'payload.severity' is invalid (must be one of: " + ", ".join(SEVERITIES) + ")"
        )
    return errors


def record(state: EventsState, event: dict[str, Any], routing_key: str, action: str) -> str:
    """Apply an accepted event to the alert it targets; return its dedup key."""
    dedup_key = str(event.get("dedup_key") or uuid.uuid4().hex)
    state.events.append(event)
    alert = state.alerts.get((routing_key, dedup_key))
    if action == "trigger":
        payload = event["payload"]
        if alert is None:
            alert = Alert(
                routing_key, dedup_key, "triggered", payload["summary"], payload["severity"]
            )
            state.alerts[(routing_key, dedup_key)] = alert
        elif alert.status == "resolved":
            alert.status = "triggered"
            alert.openings += 1
        alert.summary, alert.severity = payload["summary"], payload["severity"]
        alert.triggers += 1
    elif alert is not None and alert.status != "resolved":
        # Acknowledge/resolve of an unknown or closed alert is accepted and ignored.
        alert.status = "acknowledged" if action == "acknowledge" else "resolved"
    if alert is not None:
        alert.events.append(event)
    return dedup_key


def _throttled(state: EventsState, routing_key: str, now: float, per_minute: int) -> bool:
    window = state.recent.setdefault(routing_key, deque())
    while window and window[0] <= now - 60.0:
        window.popleft()
    if len(window) >= per_minute:
        return True
    window.append(now)
    return False


def make_app(
    faults: Faults,
    *,
    routing_keys: set[str],
    monotonic: Callable[[], float] = time.monotonic,
    per_minute: int | None = RATE_LIMIT_PER_MINUTE,
) -> web.Application:
    """The fake Events API; `monotonic` drives the per-routing-key throttle window.
    `per_minute=None` never throttles (benchmarks measuring our own latency only)."""
    state = EventsState()

    async def enqueue(request: web.Request) -> web.Response:
        try:
            event = json.loads(await request.read())
        except ValueError:
            state.rejected += 1
            return _response(
                400,
                {
                    "status": "Unrecognized object",
                    "message": "Event object format is unrecognized",
                    "errors": ["JSON parse error"],
                },
            )
        try:
            routing_key, action = validate(event, routing_keys)
        except InvalidEventError as exc:
            state.rejected += 1
            return _response(
                400, {"status": "invalid event", "message": str(exc), "errors": exc.errors}
            )
        if per_minute is not None and _throttled(state, routing_key, monotonic(), per_minute):
            state.throttled += 1
            return _response(
                429,
                {
                    "status": "throttle event",
                    "message": "Requests for this service are arriving too quickly. "
                    "Please retry later.",
                },
            )
        dedup_key = record(state, event, routing_key, action)
        return _response(
            202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
        )

    app = web.Application(middlewares=[fault_middleware(faults, error_body)])
    app[EVENTS_STATE_KEY] = state
    app.router.add_post("/v2/enqueue", enqueue)
    return app
