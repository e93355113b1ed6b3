"""Zendesk objects of the simulated world, in the Support API's own JSON shapes.

`world.zendesk` holds four lists: `organizations` (one per account, `external_id` = the
account id, plus a few without one and one duplicate, so the account join has something
to report), `users` (agents and requesters), `tickets` (TicketObject) and `ticket_metrics`
(TicketMetricObject, one per ticket, joined by `ticket_id`).

Tickets are spread over the last 60 days; older ones are mostly solved, recent ones are
new/open with and without an agent reply, so some breach their first-response target.
Everything is plain dicts built in one pass so 100,000 tickets generate in seconds.

Timestamps that Zendesk returns as null (no reply yet, not solved) are left out, because
the contract declares them non-nullable; consumers must treat "missing" and "null" alike.
"""

import random
import time
from datetime import datetime
from typing import Any

from tensafe_ops.sandbox.world import World, WorldSize

DAY = 86400
HISTORY_DAYS = 60
AGENTS = 12
TAGS = (
    "billing",
    "login",
    "api",
    "training",
    "gpu_quota",
    "invoice",
    "bug",
    "feature_request",
    "onboarding",
    "sso",
    "latency",
    "export",
    "webhook",
    "integration",
    "upgrade",
    "refund",
    "docs",
    "data_loss",
)
TAG_WEIGHTS = tuple(len(TAGS) - i for i in range(len(TAGS)))
# Real tickets may have no priority, but the contract's `priority` enum does not admit
# null, so generated tickets always have one (exporter.sla handles null as "normal").
PRIORITIES = ("urgent", "high", "normal", "low")
PRIORITY_WEIGHTS = (5, 15, 60, 20)
# Typical first-reply time per priority (minutes): some tickets land past their target.
TYPICAL_REPLY_MINUTES = {"urgent": 40, "high": 180, "normal": 900, "low": 1800}

ORG_ID_BASE = 360_000_000
USER_ID_BASE = 370_000_000
AGENT_ID_BASE = 380_000_000


def iso(ts: float) -> str:
    """Zendesk's timestamp format: UTC, whole seconds, `Z` suffix."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def generate(world: World, rng: random.Random, size: WorldSize) -> None:
    now = world.now.timestamp()
    organizations = _organizations(world, rng)
    users = [_agent(i, now) for i in range(AGENTS)]
    requesters: list[tuple[int, int | None]] = []
    for org in organizations:
        user_id = USER_ID_BASE + len(requesters) + 1
        users.append(_requester(user_id, org["id"], now))
        requesters.append((user_id, org["id"]))
    users.append(_requester(USER_ID_BASE, None, now))  # walks in without an organization
    requesters.append((USER_ID_BASE, None))

    tickets: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    for ticket_id in range(1, size.tickets + 1):
        created = now - rng.random() * HISTORY_DAYS * DAY
        ticket, metric = _ticket(rng, ticket_id, created, now, rng.choice(requesters))
        tickets.append(ticket)
        metrics.append(metric)
    world.zendesk = {
        "organizations": organizations,
        "users": users,
        "tickets": tickets,
        "ticket_metrics": metrics,
    }


def advance(world: World, rng: random.Random, previous: datetime) -> None:
    """New tickets arrive, agents reply to some unanswered ones and solve some open ones."""
    zendesk = world.zendesk
    tickets, metrics = zendesk.setdefault("tickets", []), zendesk.setdefault("ticket_metrics", [])
    start, now = previous.timestamp(), world.now.timestamp()
    elapsed = now - start
    per_second = max(len(tickets), 100) / (HISTORY_DAYS * DAY)
    arrivals = max(1, round(per_second * elapsed * rng.uniform(2.0, 6.0)))
    requesters = [
        (u["id"], u.get("organization_id"))
        for u in zendesk.get("users", [])
        if u.get("role") == "end-user"
    ] or [(USER_ID_BASE, None)]
    next_id = max((t["id"] for t in tickets), default=0) + 1
    for offset in range(arrivals):
        created = start + rng.random() * elapsed
        ticket, metric = fresh_ticket(rng, next_id + offset, created, rng.choice(requesters))
        tickets.append(ticket)
        metrics.append(metric)

    metric_by_ticket = {m["ticket_id"]: m for m in metrics}
    unanswered = [t for t in tickets if t["status"] == "new"]
    working = [t for t in tickets if t["status"] in ("open", "pending")]
    for ticket in rng.sample(unanswered, min(len(unanswered), 1 + arrivals // 2)):
        at = max(parse_time(ticket["created_at"]), start) + rng.random() * elapsed
        reply(ticket, metric_by_ticket.get(ticket["id"]), min(at, now))
    for ticket in rng.sample(working, min(len(working), 1 + arrivals // 3)):
        at = max(parse_time(ticket["updated_at"]), start) + rng.random() * elapsed
        solve(ticket, metric_by_ticket.get(ticket["id"]), min(at, now))


def reply(ticket: dict[str, Any], metric: dict[str, Any] | None, at: float) -> None:
    """An agent's first public reply at `at` (sets the metric set's reply time)."""
    ticket["status"] = "open"
    touch(ticket, at)
    if metric is not None:
        minutes = max(0, int((at - parse_time(ticket["created_at"])) // 60))
        metric["reply_time_in_minutes"] = {"calendar": minutes, "business": minutes}
        metric["replies"] = metric.get("replies", 0) + 1
        metric["latest_comment_added_at"] = metric["updated_at"] = iso(at)


def solve(ticket: dict[str, Any], metric: dict[str, Any] | None, at: float) -> None:
    ticket["status"] = "solved"
    touch(ticket, at)
    if metric is not None:
        metric["solved_at"] = metric["status_updated_at"] = metric["updated_at"] = iso(at)


def touch(ticket: dict[str, Any], at: float) -> None:
    """Every change moves the ticket in the incremental export (updated_at order)."""
    ticket["updated_at"] = iso(at)
    ticket["generated_timestamp"] = int(at)


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _organizations(world: World, rng: random.Random) -> list[dict[str, Any]]:
    now = world.now.timestamp()
    orgs = [
        _organization(ORG_ID_BASE + i + 1, account.name, account.id, account.created_at.timestamp())
        for i, account in enumerate(world.accounts)
    ]
    # Join issues on purpose: orgs nobody linked to an account, and a second org claiming
    # the first account (e.g. a subsidiary created by hand).
    for extra in range(max(1, len(orgs) // 100)):
        orgs.append(_organization(ORG_ID_BASE + len(orgs) + 1, f"Unlinked {extra + 1}", None, now))
    if world.accounts:
        first = world.accounts[0]
        orgs.append(
            _organization(ORG_ID_BASE + len(orgs) + 1, f"{first.name} EU", first.id, now - DAY)
        )
    rng.shuffle(orgs)
    orgs.sort(key=lambda o: o["id"])
    return orgs


def _organization(
    org_id: int, name: str, external_id: str | None, created: float
) -> dict[str, Any]:
    return {
        "id": org_id,
        "name": name,
        "external_id": external_id,
        "details": None,
        "notes": None,
        "group_id": None,
        "domain_names": [],
        "shared_comments": False,
        "shared_tickets": False,
        "tags": [],
        "organization_fields": {},
        "created_at": iso(created),
        "updated_at": iso(created),
    }


def _agent(index: int, now: float) -> dict[str, Any]:
    return {
        "id": AGENT_ID_BASE + index,
        "name": f"Agent {index + 1}",
        "email": f"agent{index + 1}@tensafe.example",
        "role": "agent",
        "organization_id": None,
        "active": True,
        "created_at": iso(now - 400 * DAY),
        "updated_at": iso(now - 400 * DAY),
    }


def _requester(user_id: int, org_id: int | None, now: float) -> dict[str, Any]:
    return {
        "id": user_id,
        "name": f"Customer {user_id - USER_ID_BASE}",
        "email": f"customer{user_id - USER_ID_BASE}@example.com",
        "role": "end-user",
        "organization_id": org_id,
        "active": True,
        "created_at": iso(now - 100 * DAY),
        "updated_at": iso(now - 100 * DAY),
    }


def fresh_ticket(
    rng: random.Random, ticket_id: int, created: float, requester: tuple[int, int | None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    priority = rng.choices(PRIORITIES, PRIORITY_WEIGHTS)[0]
    ticket = _ticket_object(rng, ticket_id, created, created, "new", priority, requester)
    return ticket, metric_object(ticket_id, created, created, None, None)


def _ticket(
    rng: random.Random,
    ticket_id: int,
    created: float,
    now: float,
    requester: tuple[int, int | None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    age = now - created
    priority = rng.choices(PRIORITIES, PRIORITY_WEIGHTS)[0]
    if age < 6 * 3600:
        status = rng.choices(("new", "open", "pending"), (55, 35, 10))[0]
    elif age < 5 * DAY:
        status = rng.choices(("new", "open", "pending", "hold", "solved"), (10, 30, 15, 5, 40))[0]
    else:
        status = rng.choices(("open", "pending", "hold", "solved", "closed"), (4, 2, 1, 43, 50))[0]
    replied_after = None
    reply_chance = 0.85 if age < 5 * DAY else 0.98  # few tickets stay unanswered for weeks
    if status != "new" and (status in ("solved", "closed") or rng.random() < reply_chance):
        typical = TYPICAL_REPLY_MINUTES[priority] * 60
        replied_after = min(age, rng.expovariate(1 / typical))
    solved_at = None
    if status in ("solved", "closed"):
        since_reply = created + (replied_after or 0)
        solved_at = min(now, since_reply + rng.expovariate(1 / (2 * DAY)))
    updated = max(created, solved_at or 0, created + (replied_after or 0))
    if status not in ("new", "solved", "closed"):
        updated += rng.random() * (now - updated)
    ticket = _ticket_object(rng, ticket_id, created, updated, status, priority, requester)
    metric = metric_object(ticket_id, created, updated, replied_after, solved_at)
    return ticket, metric


def _ticket_object(
    rng: random.Random,
    ticket_id: int,
    created: float,
    updated: float,
    status: str,
    priority: str,
    requester: tuple[int, int | None],
) -> dict[str, Any]:
    requester_id, org_id = requester
    tags = sorted(set(rng.choices(TAGS, TAG_WEIGHTS, k=rng.randint(1, 3))))
    subject = f"{tags[0].replace('_', ' ').capitalize()} issue #{ticket_id}"
    return {
        "id": ticket_id,
        "external_id": None,
        "type": rng.choice(("question", "incident", "problem", "task")),
        "subject": subject,
        "raw_subject": subject,
        "description": f"Customer report about {tags[0]}.",
        "priority": priority,
        "status": status,
        "recipient": "support@tensafe.example",
        "requester_id": requester_id,
        "submitter_id": requester_id,
        "assignee_id": None if status == "new" else AGENT_ID_BASE + ticket_id % AGENTS,
        "organization_id": org_id,
        "group_id": None,
        "brand_id": None,
        "problem_id": None,
        "collaborator_ids": [],
        "follower_ids": [],
        "email_cc_ids": [],
        "sharing_agreement_ids": [],
        "custom_fields": [],
        "tags": tags,
        "via": {"channel": rng.choice(("email", "web", "api"))},
        "due_at": None,
        "has_incidents": False,
        "is_public": True,
        "allow_attachments": True,
        "allow_channelback": False,
        "from_messaging_channel": False,
        "created_at": iso(created),
        "updated_at": iso(updated),
        "generated_timestamp": int(updated),
    }


def metric_object(
    ticket_id: int,
    created: float,
    updated: float,
    replied_after: float | None,
    solved_at: float | None,
) -> dict[str, Any]:
    metric: dict[str, Any] = {
        "id": ticket_id + 900_000_000,
        "ticket_id": ticket_id,
        "created_at": iso(created),
        "updated_at": iso(updated),
        "status_updated_at": iso(updated),
        "group_stations": 1,
        "assignee_stations": 0 if replied_after is None else 1,
        "reopens": 0,
        "replies": 0 if replied_after is None else 1,
        "requester_updated_at": iso(created),
        "agent_wait_time_in_minutes": {},
        "requester_wait_time_in_minutes": {},
        "on_hold_time_in_minutes": {"calendar": 0, "business": 0},
        "first_resolution_time_in_minutes": {},
        "full_resolution_time_in_minutes": {},
        "reply_time_in_minutes": {},
    }
    if replied_after is not None:
        minutes = int(replied_after // 60)
        metric["reply_time_in_minutes"] = {"calendar": minutes, "business": minutes}
        metric["initially_assigned_at"] = metric["assigned_at"] = iso(created + replied_after)
        metric["latest_comment_added_at"] = iso(created + replied_after)
    if solved_at is not None:
        minutes = int((solved_at - created) // 60)
        metric["solved_at"] = iso(solved_at)
        metric["first_resolution_time_in_minutes"] = {"calendar": minutes, "business": minutes}
        metric["full_resolution_time_in_minutes"] = {"calendar": minutes, "business": minutes}
    return metric
