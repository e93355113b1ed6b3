"""Turn the tracked tickets into metric families and per-account facts (pure functions).

Series rules: the open-ticket grid (4 priorities x 4 open statuses) and the breaching
counts per priority are always emitted, zeros included, because zero is a measured value
there. Oldest-unanswered age per priority and the top tags exist only while there is
something to measure, so they vanish when the last such ticket is answered or ages out.
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter import sla
from exporter.config import ZendeskConfig
from exporter.sla import OPEN_STATUSES, PRIORITIES, TicketState
from exporter.snapshot import CACHED_NOTE

DAY = 86400.0
FACT_WINDOW = 14 * DAY
LISTED_MAX = 200
"""At most this many tickets per list of the overview (the oldest first)."""
CREATED_LISTED_MAX = 2000
"""At most this many tickets created in the last day are listed (recurring-subject patterns)."""


@dataclass(frozen=True)
class AccountMap:
    """Organization id -> product account id, with what the join could not resolve."""

    accounts: dict[int, str | None] = field(default_factory=dict)
    missing_id: int = 0
    """Organizations without an account id."""
    duplicate_id: int = 0
    """Organizations claiming an account id that another organization already claims."""

    def to_json(self) -> dict[str, Any]:
        return {
            "accounts": {str(k): v for k, v in self.accounts.items()},
            "missing_id": self.missing_id,
            "duplicate_id": self.duplicate_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "AccountMap":
        return cls(
            {int(k): v for k, v in data["accounts"].items()},
            int(data["missing_id"]),
            int(data["duplicate_id"]),
        )


def organization_account(organization: Mapping[str, Any], key: str) -> str | None:
    """The account id an organization claims in `key`: a top-level field (`external_id`) or
    else a custom organization field. None when it claims none."""
    if key in organization:
        value = organization.get(key)
    else:
        value = (organization.get("organization_fields") or {}).get(key)
    account = str(value).strip() if value not in (None, "") else ""
    return account or None


def account_map(claims: Iterable[tuple[int, str | None]]) -> AccountMap:
    """Join (organization id, claimed account id) pairs. Duplicates all map to the account
    (their tickets add up)."""
    accounts: dict[int, str | None] = {}
    claimed: Counter[str] = Counter()
    missing = 0
    for organization_id, account in claims:
        accounts[organization_id] = account
        if account:
            claimed[account] += 1
        else:
            missing += 1
    duplicates = sum(count - 1 for count in claimed.values())
    return AccountMap(accounts, missing, duplicates)


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc + CACHED_NOTE, labels=labels)


@dataclass
class Tally:
    """Counts over the tracked tickets at one instant."""

    open: Counter[tuple[str, str]] = field(default_factory=Counter)
    breaching: Counter[str] = field(default_factory=Counter)
    oldest_unanswered: dict[sla.Priority, float] = field(default_factory=dict)
    long_unanswered: int = 0
    created_24h: int = 0
    solved_24h: int = 0
    tags_24h: Counter[str] = field(default_factory=Counter)
    tracked: int = 0
    facts: dict[str, dict[str, int]] = field(default_factory=dict)
    achievement: dict[str, sla.Achievement] = field(default_factory=dict)
    """First-response SLA achievement per window label (`sla.SLA_WINDOWS`)."""
    solved_24h_by_priority: Counter[str] = field(default_factory=Counter)
    urgent_open: list[TicketState] = field(default_factory=list)
    """Open p1/p2 tickets."""
    long_unanswered_tickets: list[TicketState] = field(default_factory=list)
    created_24h_tickets: list[TicketState] = field(default_factory=list)


def build(
    tickets: Iterable[TicketState], accounts: AccountMap, cfg: ZendeskConfig, now: float
) -> tuple[list[Metric], dict[str, dict[str, int]], dict[str, Any]]:
    """All Zendesk families, the per-account facts for the health join and the overview the
    operator API reads."""
    counts = tally(tickets, accounts, cfg, now)
    return (
        families(counts, accounts, cfg),
        share_equal(counts.facts),
        overview(counts, accounts, cfg, now),
    )


def _ticket_json(
    ticket: TicketState, accounts: AccountMap, cfg: ZendeskConfig, now: float
) -> dict[str, Any]:
    org = ticket.organization_id
    return {
        "id": ticket.id,
        "subject": ticket.subject,
        "priority": sla.priority_name(ticket.priority),
        "status": ticket.status,
        "created_at": ticket.created_at,
        "account": None if org is None else accounts.accounts.get(org),
        "answered": sla.is_answered(ticket),
        "breaching": sla.is_breaching(ticket, now, cfg.first_response_sla),
        "tags": list(ticket.tags),
    }


def overview(counts: Tally, accounts: AccountMap, cfg: ZendeskConfig, now: float) -> dict[str, Any]:
    """Per priority counts and targets, the open p1/p2 tickets, the tickets unanswered too
    long and the tickets of the last day (for recurring subjects and tags)."""

    def listed(tickets: list[TicketState], limit: int) -> list[dict[str, Any]]:
        oldest = sorted(tickets, key=lambda t: (t.created_at, t.id))[:limit]
        return [_ticket_json(t, accounts, cfg, now) for t in oldest]

    return {
        "priorities": {
            sla.priority_name(priority): {
                "open": sum(counts.open[(priority, status)] for status in OPEN_STATUSES),
                "breaching": counts.breaching[priority],
                "target_seconds": cfg.first_response_sla[priority],
                "oldest_unanswered_seconds": counts.oldest_unanswered.get(priority),
                "solved_24h": counts.solved_24h_by_priority[sla.priority_name(priority)],
            }
            for priority in PRIORITIES
        },
        "created_24h": counts.created_24h,
        "solved_24h": counts.solved_24h,
        "long_unanswered": counts.long_unanswered,
        "unanswered_alert_after": cfg.unanswered_alert_after,
        "open_urgent": listed(counts.urgent_open, LISTED_MAX),
        "open_urgent_total": len(counts.urgent_open),
        "long_unanswered_tickets": listed(counts.long_unanswered_tickets, LISTED_MAX),
        "recent": listed(counts.created_24h_tickets, CREATED_LISTED_MAX),
        "top_tags_24h": dict(counts.tags_24h.most_common(cfg.top_tags)),
    }


def share_equal(facts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Accounts with equal counts get one fact object (facts are read-only once built): of
    20,000 accounts nearly all have one of a few dozen small count combinations."""
    shared: dict[tuple[int, ...], dict[str, int]] = {}
    return {account: shared.setdefault(tuple(f.values()), f) for account, f in facts.items()}


def tally(
    tickets: Iterable[TicketState], accounts: AccountMap, cfg: ZendeskConfig, now: float
) -> Tally:
    targets = cfg.first_response_sla
    tickets = list(tickets)
    counts = Tally(
        oldest_unanswered=sla.oldest_unanswered_age(tickets, now),
        achievement={
            label: sla.achievement(tickets, now, seconds, targets)
            for label, seconds in sla.SLA_WINDOWS.items()
        },
    )
    counts.facts = {
        account: {"tickets_14d": 0, "tickets_prev_14d": 0, "open_breaching": 0, "open": 0}
        for account in accounts.accounts.values()
        if account is not None
    }
    for ticket in tickets:
        counts.tracked += 1
        is_open = sla.is_open(ticket)
        is_breaching = sla.is_breaching(ticket, now, targets)
        if is_open:
            counts.open[(ticket.priority, ticket.status)] += 1
            if ticket.priority in ("urgent", "high"):
                counts.urgent_open.append(ticket)
        if is_breaching:
            counts.breaching[ticket.priority] += 1
        if sla.is_unanswered_over(ticket, now, cfg.unanswered_alert_after):
            counts.long_unanswered += 1
            counts.long_unanswered_tickets.append(ticket)
        if ticket.created_at >= now - DAY:
            counts.created_24h += 1
            counts.tags_24h.update(ticket.tags)
            counts.created_24h_tickets.append(ticket)
        if sla.solved_since(ticket, now - DAY):
            counts.solved_24h += 1
            counts.solved_24h_by_priority[sla.priority_name(ticket.priority)] += 1
        org = ticket.organization_id
        account = None if org is None else accounts.accounts.get(org)
        if account is not None:
            fact = counts.facts[account]
            if ticket.created_at >= now - FACT_WINDOW:
                fact["tickets_14d"] += 1
            elif ticket.created_at >= now - 2 * FACT_WINDOW:
                fact["tickets_prev_14d"] += 1
            fact["open"] += is_open
            fact["open_breaching"] += is_breaching
    return counts


def families(counts: Tally, accounts: AccountMap, cfg: ZendeskConfig) -> list[Metric]:
    targets = cfg.first_response_sla
    open_family = _gauge(
        "tensafe_zendesk_open_tickets",
        "Open Zendesk tickets (new, open, pending, hold) by priority (p1=urgent..p4=low).",
        ["priority", "status"],
    )
    breaching_family = _gauge(
        "tensafe_zendesk_sla_breaching_tickets",
        "Open tickets with no agent reply past their first-response target.",
        ["priority"],
    )
    target_family = _gauge(
        "tensafe_zendesk_first_response_target_seconds",
        "Configured first-response target (calendar time).",
        ["priority"],
    )
    oldest_family = _gauge(
        "tensafe_zendesk_oldest_unanswered_age_seconds",
        "Age of the oldest open ticket with no agent reply (absent when there is none).",
        ["priority"],
    )
    for priority in PRIORITIES:
        name = sla.priority_name(priority)
        for status in OPEN_STATUSES:
            open_family.add_metric([name, status], counts.open[(priority, status)])
        breaching_family.add_metric([name], counts.breaching[priority])
        target_family.add_metric([name], targets[priority])
        if priority in counts.oldest_unanswered:
            oldest_family.add_metric([name], counts.oldest_unanswered[priority])

    achieved_family = _gauge(
        "tensafe_zendesk_first_response_sla_tickets",
        "Tickets whose first response (first agent reply, or solve without one) fell in the "
        "window, by whether it met the priority's target.",
        ["priority", "window", "result"],
    )
    ratio_family = _gauge(
        "tensafe_zendesk_first_response_sla_achievement_ratio",
        "Share of the window's first responses that met their target (absent without any).",
        ["priority", "window"],
    )
    for label, achieved in counts.achievement.items():
        for priority in PRIORITIES:
            name = sla.priority_name(priority)
            achieved_family.add_metric([name, label, "met"], achieved.met[priority])
            achieved_family.add_metric([name, label, "missed"], achieved.missed[priority])
            ratio = achieved.ratio(priority)
            if ratio is not None:
                ratio_family.add_metric([name, label], ratio)

    long_family = _gauge(
        "tensafe_zendesk_long_unanswered_tickets",
        f"Open tickets with no agent reply for over {cfg.unanswered_alert_after:.0f}s.",
    )
    long_family.add_metric([], counts.long_unanswered)
    created_family = _gauge(
        "tensafe_zendesk_tickets_created_24h", "Tickets created in the last 24 hours."
    )
    created_family.add_metric([], counts.created_24h)
    solved_family = _gauge(
        "tensafe_zendesk_tickets_solved_24h", "Tickets solved in the last 24 hours (still solved)."
    )
    solved_family.add_metric([], counts.solved_24h)
    tags_family = _gauge(
        "tensafe_zendesk_top_tag_tickets_24h",
        f"Tickets created in the last 24 hours per tag, top {cfg.top_tags} tags only.",
        ["tag"],
    )
    for tag, count in sorted(counts.tags_24h.items(), key=lambda item: (-item[1], item[0]))[
        : cfg.top_tags
    ]:
        tags_family.add_metric([tag], count)
    tracked_family = _gauge(
        "tensafe_zendesk_tracked_tickets",
        "Tickets held in the exporter's state (open, or recent enough to count).",
    )
    tracked_family.add_metric([], counts.tracked)
    join_family = _gauge(
        "tensafe_account_join_issues",
        "Upstream objects that could not be joined to one product account, per refresh.",
        ["source", "issue"],
    )
    join_family.add_metric(["zendesk", "missing_id"], accounts.missing_id)
    join_family.add_metric(["zendesk", "duplicate_id"], accounts.duplicate_id)
    return [
        open_family,
        breaching_family,
        target_family,
        oldest_family,
        achieved_family,
        ratio_family,
        long_family,
        created_family,
        solved_family,
        tags_family,
        tracked_family,
        join_family,
    ]
