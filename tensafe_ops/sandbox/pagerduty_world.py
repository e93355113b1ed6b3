"""PagerDuty objects of the simulated world, in REST API v2 shapes.

`world.pagerduty` holds `users`, `escalation_policies`, `priorities`, `services`, `oncalls`
and `incidents`. Acknowledge and resolve times live on the incident itself, exactly as
`GET /incidents` returns them (see docs/world-file/pagerduty.md):

- `acknowledgements[].at` while the incident is `acknowledged` (the API empties the list
  once the incident is resolved or triggered again, e.g. when its service's
  `acknowledgement_timeout` runs out: `expire_acknowledgements`);
- `resolved_at` and `last_status_change_at` once it is `resolved`.

Log entries are not modelled: the official contract cannot validate an acknowledge log
entry (its `type` enums contradict each other), so nothing here depends on them.
"""

import math
import random
import string
from datetime import datetime, timedelta
from typing import Any

from tensafe_ops.sandbox.world import World, WorldSize

API = "https://api.pagerduty.com"
WEB = "https://tensafe.pagerduty.com"
HISTORY_DAYS = 60
MEAN_ACK_SECONDS = 900.0
MEAN_RESOLVE_SECONDS = 5400.0
FORGOTTEN_AFTER = timedelta(days=7)
"""Open incidents older than this are forgotten by responders: `advance` leaves them open."""

_ENGINEERS = (
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Ken Thompson",
    "Margaret Hamilton",
    "Dennis Ritchie",
    "Radia Perlman",
)
_POLICIES = ("Platform", "Training Jobs", "Billing", "Security")
_SERVICES = (
    ("API Gateway", 0),
    ("Inference API", 0),
    ("Training Scheduler", 1),
    ("GPU Workers", 1),
    ("Billing Sync", 2),
    ("Auth Service", 3),
)
_TITLES = (
    "High error rate on {service}",
    "{service} latency p99 above SLO",
    "{service} health check failing",
    "Disk almost full on {service} node",
    "{service} queue backlog growing",
)
_LEVEL_SHIFTS = {1: timedelta(days=1), 2: timedelta(days=7), 3: timedelta(days=30)}


def iso(moment: datetime) -> str:
    """PagerDuty's timestamp format: UTC with a `Z` suffix, whole seconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _new_id(rng: random.Random, taken: set[str]) -> str:
    while True:
        candidate = "P" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=6))
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def reference(obj: dict[str, Any], kind: str, path: str) -> dict[str, Any]:
    """A `<kind>_reference` to `obj`, as the API embeds it in other objects."""
    return {
        "id": obj["id"],
        "type": f"{kind}_reference",
        "summary": obj["summary"],
        "self": f"{API}/{path}/{obj['id']}",
        "html_url": f"{WEB}/{path}/{obj['id']}",
    }


def _taken_ids(world: World) -> set[str]:
    return {obj["id"] for objects in world.pagerduty.values() for obj in objects if "id" in obj}


def _directory(rng: random.Random, taken: set[str]) -> dict[str, list[dict[str, Any]]]:
    users = []
    for name in _ENGINEERS:
        user_id = _new_id(rng, taken)
        email = name.lower().replace(" ", ".") + "@tensafe.example"
        users.append(
            {
                "id": user_id,
                "type": "user",
                "summary": name,
                "name": name,
                "email": email,
                "self": f"{API}/users/{user_id}",
                "html_url": f"{WEB}/users/{user_id}",
            }
        )
    policies = []
    for name in _POLICIES:
        policy_id = _new_id(rng, taken)
        policies.append(
            {
                "id": policy_id,
                "type": "escalation_policy",
                "summary": name,
                "name": name,
                "self": f"{API}/escalation_policies/{policy_id}",
                "html_url": f"{WEB}/escalation_policies/{policy_id}",
            }
        )
    priorities = []
    for index in range(1, 6):
        priority_id = _new_id(rng, taken)
        priorities.append(
            {
                "id": priority_id,
                "type": "priority",
                "summary": f"P{index}",
                "name": f"P{index}",
                "self": f"{API}/priorities/{priority_id}",
            }
        )
    return {"users": users, "escalation_policies": policies, "priorities": priorities}


def _services(
    rng: random.Random, taken: set[str], policies: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    return [
        _service(_new_id(rng, taken), name, policies[policy_index], now)
        for name, policy_index in _SERVICES
    ]


def _service(service_id: str, name: str, policy: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "id": service_id,
        "type": "service",
        "summary": name,
        "name": name,
        "self": f"{API}/services/{service_id}",
        "html_url": f"{WEB}/service-directory/{service_id}",
        "auto_resolve_timeout": 14400,
        "acknowledgement_timeout": 1800,
        "created_at": iso(now - timedelta(days=400)),
        "status": "active",
        "escalation_policy": reference(policy, "escalation_policy", "escalation_policies"),
        "teams": [],
        "integrations": [],
        "alert_creation": "create_alerts_and_incidents",
    }


def _oncall(
    policy: dict[str, Any], level: int, user: dict[str, Any], start: datetime
) -> dict[str, Any]:
    return {
        "escalation_policy": reference(policy, "escalation_policy", "escalation_policies"),
        "user": reference(user, "user", "users"),
        "escalation_level": level,
        "start": iso(start),
        "end": iso(start + _LEVEL_SHIFTS[level]),
    }


def _oncalls(
    rng: random.Random, users: list[dict[str, Any]], policies: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """One current shift per (policy, level); level 1 rotates daily, 2 weekly, 3 monthly."""
    oncalls = []
    for policy in policies:
        for level, shift in _LEVEL_SHIFTS.items():
            start = now - shift * rng.random()
            oncalls.append(_oncall(policy, level, rng.choice(users), start.replace(microsecond=0)))
    return oncalls


def _pick_priority(
    rng: random.Random, urgency: str, priorities: list[dict[str, Any]]
) -> dict[str, Any]:
    """`{"priority": reference}`, or nothing: the contract has no null priority, so an
    incident without one simply lacks the key."""
    if rng.random() < 0.3:
        return {}
    band = priorities[:3] if urgency == "high" else priorities[2:]
    return {"priority": reference(rng.choice(band), "priority", "priorities")}


def new_incident(
    world: World, rng: random.Random, number: int, created: datetime, taken: set[str]
) -> dict[str, Any]:
    """A freshly triggered incident on a random service (not one the Events API pages)."""
    data = world.pagerduty
    service = rng.choice(_services_paged_by_the_world(data["services"]))
    urgency = "high" if rng.random() < 0.6 else "low"
    title = rng.choice(_TITLES).format(service=service["name"])
    incident_id = _new_id(rng, taken)
    assignee = rng.choice(data["users"])
    incident = build_incident(
        service,
        incident_id,
        number,
        created,
        title=title,
        urgency=urgency,
        assignee=assignee,
        incident_key=f"{service['id'].lower()}-{number:06d}",
    )
    return incident | _pick_priority(rng, urgency, data["priorities"])


def build_incident(
    service: dict[str, Any],
    incident_id: str,
    number: int,
    created: datetime,
    *,
    title: str,
    urgency: str,
    assignee: dict[str, Any],
    incident_key: str,
) -> dict[str, Any]:
    """A triggered incident on `service` as `GET /incidents` shows it (no priority)."""
    return {
        "id": incident_id,
        "type": "incident",
        "summary": f"[#{number}] {title}",
        "self": f"{API}/incidents/{incident_id}",
        "html_url": f"{WEB}/incidents/{incident_id}",
        "incident_number": number,
        "title": title,
        "created_at": iso(created),
        "updated_at": iso(created),
        "status": "triggered",
        "incident_key": incident_key,
        "service": reference(service, "service", "services"),
        "assignments": [{"at": iso(created), "assignee": reference(assignee, "user", "users")}],
        "assigned_via": "escalation_policy",
        "last_status_change_at": iso(created),
        "first_trigger_log_entry": {
            "id": "R" + incident_id[1:] + "T",
            "type": "trigger_log_entry_reference",
            "summary": "Triggered through the API",
            "self": f"{API}/log_entries/R{incident_id[1:]}T?incident_id={incident_id}",
            "html_url": f"{WEB}/incidents/{incident_id}/log_entries/R{incident_id[1:]}T",
        },
        "alert_counts": {"all": 1, "triggered": 1, "resolved": 0},
        "is_mergeable": True,
        "incident_type": {"name": "incident_default"},
        "escalation_policy": service["escalation_policy"],
        "teams": [],
        "pending_actions": [],
        "acknowledgements": [],
        "last_status_change_by": service_agent(service),
        "incidents_responders": [],
        "responder_requests": [],
        "urgency": urgency,
    }


def service_agent(service: dict[str, Any]) -> dict[str, Any]:
    return reference(service, "service", "services")


def acknowledge(incident: dict[str, Any], user: dict[str, Any], at: datetime) -> None:
    _acknowledged_by(incident, reference(user, "user", "users"), at)


def _acknowledged_by(incident: dict[str, Any], reference_: dict[str, Any], at: datetime) -> None:
    incident["status"] = "acknowledged"
    incident["acknowledgements"] = [{"at": iso(at), "acknowledger": reference_}]
    incident["last_status_change_at"] = incident["updated_at"] = iso(at)
    incident["last_status_change_by"] = reference_


def retrigger(incident: dict[str, Any], at: datetime) -> None:
    """Back to `triggered` (an acknowledgement timed out): the acknowledgements are gone."""
    incident["status"] = "triggered"
    incident["acknowledgements"] = []
    incident["last_status_change_at"] = incident["updated_at"] = iso(at)
    incident["last_status_change_by"] = incident["service"]


def expire_acknowledgements(world: World, since: datetime, now: datetime) -> list[dict[str, Any]]:
    """Re-trigger the acknowledged incidents whose service's `acknowledgement_timeout` (seconds
    after the acknowledgement; null: never) ran out in `(since, now]`, as PagerDuty does.
    (A generated incident acknowledged before the world began is taken as renewed since.)"""
    timeouts = {s["id"]: s.get("acknowledgement_timeout") for s in world.pagerduty["services"]}
    expired = []
    for incident in world.pagerduty["incidents"]:
        timeout = timeouts.get(incident["service"]["id"])
        if incident["status"] != "acknowledged" or not timeout:
            continue
        acked = max(parse(a["at"]) for a in incident["acknowledgements"])
        if since < acked + timedelta(seconds=timeout) <= now:
            retrigger(incident, acked + timedelta(seconds=timeout))
            expired.append(incident)
    return expired


def resolve(incident: dict[str, Any], user: dict[str, Any], at: datetime) -> None:
    _resolved_by(incident, reference(user, "user", "users"), at)


def _resolved_by(incident: dict[str, Any], reference_: dict[str, Any], at: datetime) -> None:
    incident["status"] = "resolved"
    incident["acknowledgements"] = []
    incident["assignments"] = []
    incident["resolved_at"] = incident["last_status_change_at"] = incident["updated_at"] = iso(at)
    incident["last_status_change_by"] = reference_
    incident["alert_counts"] = {"all": 1, "triggered": 0, "resolved": 1}


# --- Pages sent through the Events API v2 (pagerduty_events_api) ------------------------
# A routing key is the `integration_key` of an Events API v2 integration on a service: the
# REST API lists that service and the incidents the events open, like any other.

EVENTS_INTEGRATION = "events_api_v2_inbound_integration_reference"
EVENTS_SERVICE_NAME = "Alertmanager (tensafe-ops)"
_HIGH_SEVERITIES = ("critical", "error")


def _integration_keys(service: dict[str, Any]) -> set[str]:
    return {
        i["integration_key"]
        for i in service.get("integrations") or []
        if i.get("type") == EVENTS_INTEGRATION and "integration_key" in i
    }


def _services_paged_by_the_world(services: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Services the simulation invents incidents on: not those paged through the Events API
    (their incidents are the pages someone sent), unless there is nothing else."""
    return [s for s in services if not _integration_keys(s)] or services


def events_service(world: World, routing_key: str) -> dict[str, Any] | None:
    """The service whose Events API v2 integration has this routing key."""
    for service in world.pagerduty.get("services", []):
        if routing_key in _integration_keys(service):
            return service
    return None


def add_events_service(
    world: World, routing_key: str, name: str = EVENTS_SERVICE_NAME
) -> dict[str, Any]:
    """The service `routing_key` pages, created on the first escalation policy (with the
    directory of users and policies, if the world has none yet) unless it exists."""
    existing = events_service(world, routing_key)
    if existing is not None:
        return existing
    data = world.pagerduty
    taken = _taken_ids(world)
    rng = random.Random(routing_key)  # ids stable per key; the world's own rng is untouched
    if not data.get("escalation_policies") or not data.get("users"):
        data.update(_directory(rng, taken))
    service_id, integration_id = _new_id(rng, taken), _new_id(rng, taken)
    service = _service(service_id, name, data["escalation_policies"][0], world.now)
    service.update(
        description="Pages from the Alertmanager webhook router",
        incident_urgency_rule={"type": "constant", "urgency": "severity_based"},
        integrations=[
            {
                "id": integration_id,
                "type": EVENTS_INTEGRATION,
                "summary": "Events API v2",
                "self": f"{API}/services/{service_id}/integrations/{integration_id}",
                "html_url": f"{WEB}/services/{service_id}/integrations/{integration_id}",
                "integration_key": routing_key,
            }
        ],
    )
    data.setdefault("services", []).append(service)
    data.setdefault("incidents", [])
    return service


def event_urgency(service: dict[str, Any], severity: str) -> str:
    """The service's urgency rule: a constant, or by the event's severity (PagerDuty's
    dynamic notifications: critical and error are high, warning and info low)."""
    rule = service.get("incident_urgency_rule") or {}
    urgency = rule.get("urgency", "high")
    if urgency == "severity_based":
        return "high" if severity in _HIGH_SEVERITIES else "low"
    return str(urgency)


def _responder(world: World, service: dict[str, Any]) -> dict[str, Any]:
    """Who the service's escalation policy reaches first: level 1 on call, else anyone."""
    data = world.pagerduty
    policy_id = service["escalation_policy"]["id"]
    for oncall in data.get("oncalls", []):
        if oncall["escalation_policy"]["id"] == policy_id and oncall["escalation_level"] == 1:
            for user in data["users"]:
                if user["id"] == oncall["user"]["id"]:
                    return user
    return data["users"][0]


def open_incident(
    world: World,
    service: dict[str, Any],
    number: int,
    dedup_key: str,
    summary: str,
    severity: str,
) -> dict[str, Any]:
    """A trigger event without an open alert for its dedup key: incident `number` (unused
    yet), opened now. Its id is made from the number (`Q…`; generated ids are `P…`)."""
    incident = build_incident(
        service,
        "Q" + _base36(number).rjust(6, "0"),
        number,
        world.now,
        title=summary,
        urgency=event_urgency(service, severity),
        assignee=_responder(world, service),
        incident_key=dedup_key,
    )
    world.pagerduty.setdefault("incidents", []).append(incident)
    return incident


def _base36(number: int) -> str:
    digits = string.digits + string.ascii_uppercase
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if not number:
            return text


def acknowledge_by_event(world: World, incident: dict[str, Any]) -> None:
    """An acknowledge event: a triggered incident is acknowledged by its service, now."""
    if incident["status"] == "triggered":
        _acknowledged_by(incident, dict(incident["service"]), world.now)


def resolve_by_event(world: World, incident: dict[str, Any]) -> None:
    """A resolve event: an open incident is resolved by its service, now."""
    if incident["status"] != "resolved":
        _resolved_by(incident, dict(incident["service"]), world.now)


def _open_chance(age: timedelta) -> float:
    if age < timedelta(days=1):
        return 0.4
    if age < timedelta(days=7):
        return 0.12
    return 0.03


def _play_out(
    incident: dict[str, Any], rng: random.Random, users: list[dict[str, Any]], now: datetime
) -> None:
    """Give a historical incident its acknowledge/resolve history up to `now`."""
    created = parse(incident["created_at"])
    stays_open = rng.random() < _open_chance(now - created)
    acked_at = created + timedelta(seconds=30 + rng.expovariate(1 / MEAN_ACK_SECONDS))
    resolved_at = acked_at + timedelta(seconds=60 + rng.expovariate(1 / MEAN_RESOLVE_SECONDS))
    responder = rng.choice(users)
    if stays_open or acked_at >= now:
        if acked_at < now and rng.random() < 0.45:
            acknowledge(incident, responder, acked_at.replace(microsecond=0))
        return
    if resolved_at >= now:
        acknowledge(incident, responder, acked_at.replace(microsecond=0))
        return
    resolve(incident, responder, resolved_at.replace(microsecond=0))


def generate(world: World, rng: random.Random, size: WorldSize) -> None:
    now = world.now
    taken = _taken_ids(world)
    world.pagerduty.update(_directory(rng, taken))
    data = world.pagerduty
    data["services"] = _services(rng, taken, data["escalation_policies"], now)
    data["oncalls"] = _oncalls(rng, data["users"], data["escalation_policies"], now)
    history = timedelta(days=HISTORY_DAYS)
    created = sorted(
        (now - history * rng.random()).replace(microsecond=0) for _ in range(size.incidents)
    )
    incidents = []
    for number, moment in enumerate(created, start=1):
        incident = new_incident(world, rng, number, moment, taken)
        _play_out(incident, rng, data["users"], now)
        incidents.append(incident)
    # Keep one month-old page open, as in real accounts: an open-incident count that
    # queries only the API's default 30-day window misses it.
    stale = [i for i in incidents if timedelta(days=35) < now - parse(i["created_at"])]
    if stale and not any(i["status"] != "resolved" for i in stale):
        forgotten = stale[-1]
        forgotten.update(
            status="triggered",
            acknowledgements=[],
            last_status_change_at=forgotten["created_at"],
            updated_at=forgotten["created_at"],
        )
        forgotten.pop("resolved_at", None)
        forgotten["alert_counts"] = {"all": 1, "triggered": 1, "resolved": 0}
    data["incidents"] = incidents


def _happens(rng: random.Random, elapsed: float, mean: float) -> bool:
    return rng.random() < 1 - math.exp(-elapsed / mean)


def _rotate(world: World, rng: random.Random) -> None:
    data = world.pagerduty
    for oncall in data["oncalls"]:
        end = parse(oncall["end"])
        level = int(oncall["escalation_level"])
        while end <= world.now:
            start, end = end, end + _LEVEL_SHIFTS[level]
            user = rng.choice(data["users"])
            oncall.update(user=reference(user, "user", "users"), start=iso(start), end=iso(end))


def advance(world: World, rng: random.Random, previous: datetime) -> None:
    """New pages, acknowledgements and resolutions between `previous` and `world.now`."""
    data = world.pagerduty
    if not data.get("services"):
        return
    now = world.now
    elapsed = (now - previous).total_seconds()
    taken = _taken_ids(world)
    expire_acknowledgements(world, previous, now)
    for incident in data["incidents"]:
        created = parse(incident["created_at"])
        if incident["status"] == "resolved" or now - created > FORGOTTEN_AFTER:
            continue
        since = max(created, previous, parse(incident["last_status_change_at"]))
        at = (since + (now - since) * rng.random()).replace(microsecond=0)
        responder = rng.choice(data["users"])
        if incident["status"] == "triggered" and _happens(rng, elapsed, MEAN_ACK_SECONDS):
            acknowledge(incident, responder, at)
        elif incident["status"] == "acknowledged" and _happens(rng, elapsed, MEAN_RESOLVE_SECONDS):
            resolve(incident, responder, at)
    per_second = len(data["incidents"]) / (HISTORY_DAYS * 86400) or 1 / 43200
    expected = elapsed * per_second
    count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
    number = max((int(i["incident_number"]) for i in data["incidents"]), default=0)
    for offset in range(count):
        created = (previous + (now - previous) * rng.random()).replace(microsecond=0)
        data["incidents"].append(new_incident(world, rng, number + offset + 1, created, taken))
    data["incidents"].sort(key=lambda i: (i["created_at"], i["incident_number"]))
    _rotate(world, rng)
