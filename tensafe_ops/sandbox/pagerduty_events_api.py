"""Fake PagerDuty Events API v2 (`POST /v2/enqueue`), the webhook's paging target.

It validates events as events.pagerduty.com does (routing key, `event_action`, payload
`summary` <= 1024 chars, `source`, `severity`), answers 202 / 400 / 429 in the API's own
bodies and throttles at 120 events per minute per routing key.

Events act on the PagerDuty world the REST fake serves (one world): each routing key is the
Events API v2 integration of a service in `world.pagerduty` (`add_events_service`). A
trigger whose dedup key has no open alert opens a new incident on that service
(`incident_key` = the dedup key, urgency by the service's rule); a trigger for an open one
is deduplicated into it; acknowledge and resolve act on the open incident and are ignored
when there is none (also when a responder resolved it meanwhile); a trigger after the
resolve opens a new incident. `EventsState` (`app[EVENTS_STATE_KEY]`) keeps one `Alert`
per dedup key, so tests assert what an operator would have seen in PagerDuty.
"""

import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from tensafe_ops.sandbox import pagerduty_world
from tensafe_ops.sandbox.faults import Faults, fault_middleware
from tensafe_ops.sandbox.received import inspectable
from tensafe_ops.sandbox.world import World

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
    incident: dict[str, Any]
    """The world's incident this alert opened most recently (the REST API serves it)."""
    summary: str
    severity: str
    triggers: int = 0
    """Trigger events received for this key (duplicates included)."""
    openings: int = 1
    """How many times the alert went from resolved (or absent) to triggered."""
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> AlertStatus:
        """The incident's status: responders acknowledge and resolve it in the world too."""
        status: AlertStatus = self.incident["status"]
        return status


@dataclass
class EventsState:
    world: World
    services: dict[str, dict[str, Any]]
    """Routing key -> the world's service it pages."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every accepted event, in arrival order."""
    alerts: dict[tuple[str, str], Alert] = field(default_factory=dict)
    rejected: int = 0
    throttled: int = 0
    next_number: int = 0
    """The next incident number, valid while the world holds `numbered` incidents."""
    numbered: int = -1
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


def validate(event: Any, routing_keys: Container[str]) -> tuple[str, str]:
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
    """Apply an accepted event to the alert and incident it targets; return its dedup key."""
    dedup_key = str(event.get("dedup_key") or uuid.uuid4().hex)
    state.events.append(event)
    world, service = state.world, state.services[routing_key]
    alert = state.alerts.get((routing_key, dedup_key))
    if action == "trigger":
        summary, severity = event["payload"]["summary"], event["payload"]["severity"]
        if alert is None or alert.status == "resolved":
            number = _next_number(state)
            incident = pagerduty_world.open_incident(
                world, service, number, dedup_key, summary, severity
            )
            state.next_number, state.numbered = number + 1, state.numbered + 1
            if alert is None:
                alert = Alert(routing_key, dedup_key, incident, summary, severity, openings=0)
                state.alerts[(routing_key, dedup_key)] = alert
            alert.incident = incident
            alert.openings += 1
        alert.summary, alert.severity = summary, severity
        alert.triggers += 1
    elif alert is not None:
        # Acknowledge/resolve of an unknown or closed alert is accepted and ignored.
        if action == "acknowledge":
            pagerduty_world.acknowledge_by_event(world, alert.incident)
        else:
            pagerduty_world.resolve_by_event(world, alert.incident)
    if alert is not None:
        alert.events.append(event)
    return dedup_key


def _next_number(state: EventsState) -> int:
    """One past the world's highest incident number, looked up again only when the world
    gained incidents elsewhere (the simulation's own): O(1) per page during a storm."""
    incidents = state.world.pagerduty.get("incidents", [])
    if len(incidents) != state.numbered:
        state.next_number = max((int(i["incident_number"]) for i in incidents), default=0) + 1
        state.numbered = len(incidents)
    return state.next_number


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
    routing_keys: Iterable[str],
    world: World | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    per_minute: int | None = RATE_LIMIT_PER_MINUTE,
) -> web.Application:
    """The fake Events API paging `world` (a PagerDuty world of its own if None): each
    routing key pages its service there, added if missing. `monotonic` drives the
    per-routing-key throttle window; `per_minute=None` never throttles (benchmarks
    measuring our own latency only)."""
    if world is None:
        world = World(now=datetime.now(UTC).replace(microsecond=0))
    services = {key: pagerduty_world.add_events_service(world, key) for key in routing_keys}
    state = EventsState(world, services)

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
            routing_key, action = validate(event, services)
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
    inspectable(app)
    app[EVENTS_STATE_KEY] = state
    app.router.add_post("/v2/enqueue", enqueue)
    return app
