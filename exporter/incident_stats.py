"""Incident statistics: pure functions over PagerDuty REST API v2 incident dicts.

Rules (the clock is always passed in as `now`):

- Open means status `triggered` or `acknowledged`; `resolved` is closed.
- An incident's priority is its `priority.summary` (P1..P5), or `none` when the incident
  has no priority (the key is absent or null).
- "Opened within a window" counts incidents whose `created_at` is in `(now - window, now]`.
- Time to acknowledge = first acknowledgement time - `created_at`. The API lists
  `acknowledgements[].at` only while the incident is acknowledged, and after an acknowledgement
  timeout re-triggers it only the new acknowledgement, so callers pass the earliest times they
  have seen before (`known_acks`, by incident id) and the earlier of the two counts.
  Incidents never seen acknowledged are left out rather than guessed.
- Time to resolve = `resolved_at` - `created_at`.
- Acknowledge-target achievement: of the incidents created in a window, those with a first
  response — the earliest acknowledgement, else (resolved without one) the resolution — are
  met when it came within their urgency's target (at most), missed otherwise. Incidents with
  no response yet count nowhere (the oldest unacknowledged age shows them).
- Both durations are taken over incidents created in the stats window `(now - window, now]`.
- The oldest unacknowledged age is `now - created_at` of the oldest `triggered` incident,
  0 when none is triggered.
- Quantiles interpolate linearly between closest ranks (numpy's default, "type 7").
"""

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

Incident = Mapping[str, Any]
OPEN_STATUSES = ("triggered", "acknowledged")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def is_open(incident: Incident) -> bool:
    return incident.get("status") in OPEN_STATUSES


def priority_name(incident: Incident) -> str:
    priority = incident.get("priority")
    if isinstance(priority, Mapping):
        return str(priority.get("summary") or priority.get("name") or "none")
    return "none"


def open_by_urgency_status(incidents: Iterable[Incident]) -> Counter[tuple[str, str]]:
    """Open incidents counted by (urgency, status)."""
    return Counter(
        (str(i.get("urgency", "high")), str(i["status"])) for i in incidents if is_open(i)
    )


def open_by_priority(incidents: Iterable[Incident]) -> Counter[str]:
    return Counter(priority_name(i) for i in incidents if is_open(i))


def opened_within(incidents: Iterable[Incident], now: datetime, window: timedelta) -> int:
    start = now - window
    return sum(1 for i in incidents if start < parse_time(i["created_at"]) <= now)


def oldest_unacknowledged_age(incidents: Iterable[Incident], now: datetime) -> float:
    ages = [
        (now - parse_time(i["created_at"])).total_seconds()
        for i in incidents
        if i.get("status") == "triggered"
    ]
    return max(ages, default=0.0)


def first_acknowledged_at(incident: Incident) -> datetime | None:
    """The earliest `acknowledgements[].at` the incident currently lists."""
    times = [parse_time(a["at"]) for a in incident.get("acknowledgements") or [] if a.get("at")]
    return min(times, default=None)


def earliest(*moments: datetime | None) -> datetime | None:
    """The earliest of the moments given (None when none is known)."""
    return min((m for m in moments if m is not None), default=None)


def _in_window(incident: Incident, now: datetime, window: timedelta) -> bool:
    return now - window < parse_time(incident["created_at"]) <= now


def times_to_acknowledge(
    incidents: Iterable[Incident],
    known_acks: Mapping[str, datetime],
    now: datetime,
    window: timedelta,
) -> list[float]:
    """Seconds from creation to first acknowledgement, for incidents created in the window."""
    durations = []
    for incident in incidents:
        if not _in_window(incident, now, window):
            continue
        acked = earliest(first_acknowledged_at(incident), known_acks.get(incident["id"]))
        if acked is not None:
            durations.append(max(0.0, (acked - parse_time(incident["created_at"])).total_seconds()))
    return durations


def times_to_resolve(
    incidents: Iterable[Incident], now: datetime, window: timedelta
) -> list[float]:
    """Seconds from creation to resolution, for resolved incidents created in the window."""
    return [
        max(0.0, (parse_time(i["resolved_at"]) - parse_time(i["created_at"])).total_seconds())
        for i in incidents
        if i.get("status") == "resolved" and i.get("resolved_at") and _in_window(i, now, window)
    ]


def first_response_at(incident: Incident, known_acks: Mapping[str, datetime]) -> datetime | None:
    """The earliest acknowledgement known, else the resolution of an incident never acked."""
    acked = earliest(first_acknowledged_at(incident), known_acks.get(incident["id"]))
    if acked is None and incident.get("status") == "resolved" and incident.get("resolved_at"):
        return parse_time(incident["resolved_at"])
    return acked


def acknowledge_achievement(
    incidents: Iterable[Incident],
    known_acks: Mapping[str, datetime],
    now: datetime,
    window: timedelta,
    targets: Mapping[str, float],
) -> Counter[tuple[str, str]]:
    """(urgency, "met" | "missed") counts over the incidents created in the window that have
    been responded to (urgencies without a target are left out)."""
    counts: Counter[tuple[str, str]] = Counter()
    for incident in incidents:
        urgency = str(incident.get("urgency", "high"))
        if urgency not in targets or not _in_window(incident, now, window):
            continue
        responded = first_response_at(incident, known_acks)
        if responded is None:
            continue
        elapsed = (responded - parse_time(incident["created_at"])).total_seconds()
        counts[(urgency, "met" if elapsed <= targets[urgency] else "missed")] += 1
    return counts


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
