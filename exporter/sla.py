"""First-response SLA rules over Zendesk's own shapes (a ticket and its metric set).

`ticket_state(ticket, metric_set)` keeps the few fields the rules need; every rule is a
pure function of that state and `now` (calendar time, seconds):

- Priorities `urgent/high/normal/low` are named `p1..p4`; a ticket without a priority is
  treated as `normal` (p3), the priority Zendesk shows for it in views.
- Open means status `new`, `open`, `pending` or `hold`; `solved`/`closed` are done.
- Answered means the metric set has `reply_time_in_minutes.calendar` (the first public
  agent reply). Null, missing key or no metric set at all all mean "no reply yet".
- First-response elapsed time = the reply time when answered, else `now - created_at`.
- Currently breaching = open AND unanswered AND elapsed > target (strictly: a ticket at
  exactly its target is not breaching yet). A late reply ends the breach: the exporter
  reports what operators can still act on.
- Unanswered too long = open AND unanswered AND `now - created_at` > the threshold (24h).
- First response moment = the first agent reply (`created_at` + reply time); for a ticket
  solved (or closed) without any reply, its solve. SLA achievement over a window counts the
  tickets whose first response fell in `(now - window, now]`: met when the elapsed time is at
  most the target (the breach rule's complement), missed otherwise. A ticket still waiting
  counts nowhere yet (it shows as breaching); it counts when its response comes.
"""

import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Priority = Literal["urgent", "high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "normal", "low")
PRIORITY_NAMES: dict[Priority, str] = {"urgent": "p1", "high": "p2", "normal": "p3", "low": "p4"}
DEFAULT_PRIORITY: Priority = "normal"
OPEN_STATUSES = ("new", "open", "pending", "hold")
DONE_STATUSES = ("solved", "closed")


@dataclass(frozen=True, slots=True)
class TicketState:
    """What the exporter keeps per ticket (small: 100,000 of these stay in memory)."""

    id: int
    status: str
    priority: Priority
    created_at: float
    """Unix seconds."""
    organization_id: int | None
    tags: tuple[str, ...]
    reply_minutes: int | None
    """Calendar minutes to the first agent reply; None while unanswered."""
    solved_at: float | None
    subject: str = ""
    """Kept only while the operator API may list the ticket (open, or created in the last
    day: `SUBJECT_KEPT_FOR`); "" otherwise, so 100,000 held tickets do not hold 100,000 subjects."""

    def to_json(self) -> list[Any]:
        return [
            self.id,
            self.status,
            self.priority,
            self.created_at,
            self.organization_id,
            list(self.tags),
            self.reply_minutes,
            self.solved_at,
            self.subject,
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> "TicketState":
        ticket_id, status, priority, created, org, tags, reply, solved = data[:8]
        subject = str(data[8]) if len(data) > 8 else ""  # state saved before subjects were kept
        return cls(
            int(ticket_id),
            sys.intern(str(status)),
            _priority(priority),
            float(created),
            org,
            tuple(sys.intern(str(t)) for t in tags),
            reply,
            solved,
            subject,
        )


SUBJECT_KEPT_FOR = 86400.0
"""Done tickets keep their subject this long after creation (recurring-subject patterns)."""


def parse_time(value: str | None) -> float | None:
    """Zendesk ISO 8601 (`2026-11-27T12:00:00Z`) to Unix seconds."""
    return None if not value else datetime.fromisoformat(value).timestamp()


def _priority(value: object) -> Priority:
    for priority in PRIORITIES:
        if value == priority:
            return priority
    return DEFAULT_PRIORITY


def ticket_state(
    ticket: Mapping[str, Any], metric_set: Mapping[str, Any] | None, now: float | None = None
) -> TicketState:
    """Extract the SLA-relevant fields from a TicketObject and its TicketMetricObject (the
    subject only while it may be listed at `now`: open, or created within SUBJECT_KEPT_FOR)."""
    metric_set = metric_set or {}
    reply = (metric_set.get("reply_time_in_minutes") or {}).get("calendar")
    created = parse_time(ticket.get("created_at"))
    tags = ticket.get("tags") or ()
    status = sys.intern(str(ticket.get("status") or "new"))
    recent = now is None or (created is not None and created >= now - SUBJECT_KEPT_FOR)
    keep_subject = status in OPEN_STATUSES or recent
    return TicketState(
        id=int(ticket["id"]),
        status=status,
        priority=_priority(ticket.get("priority")),
        created_at=created if created is not None else 0.0,
        organization_id=ticket.get("organization_id"),
        tags=tuple(sys.intern(t) for t in ([tags] if isinstance(tags, str) else tags)),
        reply_minutes=None if reply is None else int(reply),
        solved_at=parse_time(metric_set.get("solved_at")),
        subject=str(ticket.get("subject") or "")[:200] if keep_subject else "",
    )


def priority_name(priority: Priority) -> str:
    return PRIORITY_NAMES[priority]


def is_open(ticket: TicketState) -> bool:
    return ticket.status in OPEN_STATUSES


def is_answered(ticket: TicketState) -> bool:
    return ticket.reply_minutes is not None


def age_seconds(ticket: TicketState, now: float) -> float:
    return max(0.0, now - ticket.created_at)


def first_response_elapsed(ticket: TicketState, now: float) -> float:
    """Seconds to the first reply, or waited so far when there is none."""
    if ticket.reply_minutes is not None:
        return ticket.reply_minutes * 60.0
    return age_seconds(ticket, now)


def is_breaching(ticket: TicketState, now: float, targets: Mapping[Priority, float]) -> bool:
    """Open, unanswered and past its priority's first-response target."""
    return (
        is_open(ticket)
        and not is_answered(ticket)
        and first_response_elapsed(ticket, now) > targets[ticket.priority]
    )


def is_unanswered_over(ticket: TicketState, now: float, threshold: float) -> bool:
    return is_open(ticket) and not is_answered(ticket) and age_seconds(ticket, now) > threshold


def oldest_unanswered_age(tickets: Iterable[TicketState], now: float) -> dict[Priority, float]:
    """Per priority, the age of the oldest open unanswered ticket (absent if none)."""
    oldest: dict[Priority, float] = {}
    for ticket in tickets:
        if is_open(ticket) and not is_answered(ticket):
            age = age_seconds(ticket, now)
            if age > oldest.get(ticket.priority, -1.0):
                oldest[ticket.priority] = age
    return oldest


def solved_since(ticket: TicketState, since: float) -> bool:
    """Solved (and still solved or closed) at or after `since`."""
    return (
        ticket.status in DONE_STATUSES
        and ticket.solved_at is not None
        and ticket.solved_at >= since
    )


SLA_WINDOWS: dict[str, float] = {"24h": 86400.0, "7d": 7 * 86400.0}
"""Windows of the SLA achievement metrics (label -> seconds)."""


def first_response_at(ticket: TicketState) -> float | None:
    """When the ticket got its first response: the first agent reply, else (solved or closed
    without any reply) its solve; None while it is still waiting."""
    if ticket.reply_minutes is not None:
        return ticket.created_at + ticket.reply_minutes * 60.0
    if ticket.status in DONE_STATUSES and ticket.solved_at is not None:
        return ticket.solved_at
    return None


def responded_since(ticket: TicketState, since: float) -> bool:
    at = first_response_at(ticket)
    return at is not None and at > since


@dataclass
class Achievement:
    """Tickets whose first response fell in a window, per priority: met or missed."""

    met: Counter[Priority]
    missed: Counter[Priority]

    def ratio(self, priority: Priority) -> float | None:
        """met / (met + missed); None when no ticket got its first response in the window."""
        total = self.met[priority] + self.missed[priority]
        return None if total == 0 else self.met[priority] / total


def achievement(
    tickets: Iterable[TicketState], now: float, window: float, targets: Mapping[Priority, float]
) -> Achievement:
    """First-response SLA achievement over `(now - window, now]`."""
    result = Achievement(Counter(), Counter())
    for ticket in tickets:
        at = first_response_at(ticket)
        if at is None or not now - window < at <= now:
            continue
        met = at - ticket.created_at <= targets[ticket.priority]
        (result.met if met else result.missed)[ticket.priority] += 1
    return result
