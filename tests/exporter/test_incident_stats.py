"""Incident statistics, case by case, over PagerDuty incident dicts."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exporter import incident_stats as stats

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def at(**ago: float) -> str:
    return (NOW - timedelta(**ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def incident(
    ident: str, status: str, created: str, urgency: str = "high", **extra: Any
) -> dict[str, Any]:
    return {"id": ident, "status": status, "created_at": created, "urgency": urgency} | extra


def test_open_counts_by_urgency_status_and_priority() -> None:
    incidents = [
        incident("A", "triggered", at(days=45), priority={"summary": "P1"}),
        incident("B", "acknowledged", at(hours=1), "low", priority=None),
        incident("C", "triggered", at(hours=2), "low"),
        incident("D", "resolved", at(hours=3), priority={"summary": "P1"}),
    ]
    assert stats.open_by_urgency_status(incidents) == {
        ("high", "triggered"): 1,
        ("low", "acknowledged"): 1,
        ("low", "triggered"): 1,
    }
    assert stats.open_by_priority(incidents) == {"P1": 1, "none": 2}


def test_opened_within_counts_the_trailing_window_only() -> None:
    incidents = [
        incident("A", "resolved", at(hours=7, minutes=59)),
        incident("B", "triggered", at(hours=8)),  # exactly 8h ago: outside (now - 8h, now]
        incident("C", "triggered", at(hours=23)),
        incident("D", "triggered", at(hours=25)),
    ]
    assert stats.opened_within(incidents, NOW, timedelta(hours=8)) == 1
    assert stats.opened_within(incidents, NOW, timedelta(hours=24)) == 3


def test_oldest_unacknowledged_age_ignores_acknowledged_and_defaults_to_zero() -> None:
    incidents = [
        incident("A", "acknowledged", at(days=50)),
        incident("B", "triggered", at(days=45)),
        incident("C", "triggered", at(hours=1)),
    ]
    assert stats.oldest_unacknowledged_age(incidents, NOW) == 45 * 86400
    assert stats.oldest_unacknowledged_age(incidents[:1], NOW) == 0.0


def test_time_to_acknowledge_uses_listed_then_remembered_acknowledgements() -> None:
    acked = incident(
        "A",
        "acknowledged",
        at(hours=2),
        acknowledgements=[{"at": at(hours=1, minutes=45)}, {"at": at(hours=1, minutes=50)}],
    )
    resolved = incident("B", "resolved", at(hours=5), acknowledgements=[])
    never_seen = incident("C", "resolved", at(hours=6), acknowledgements=[])
    too_old = incident("D", "resolved", at(days=8))
    remembered = {"B": NOW - timedelta(hours=4), "D": NOW - timedelta(days=8)}
    durations = stats.times_to_acknowledge(
        [acked, resolved, never_seen, too_old], remembered, NOW, timedelta(days=7)
    )
    assert sorted(durations) == [600.0, 3600.0]


def test_time_to_resolve_over_resolved_incidents_created_in_the_window() -> None:
    incidents = [
        incident("A", "resolved", at(hours=3), resolved_at=at(hours=2)),
        incident("B", "resolved", at(days=2), resolved_at=at(days=1)),
        incident("C", "resolved", at(days=9), resolved_at=at(days=6)),  # created before window
        incident("D", "acknowledged", at(hours=1)),
    ]
    assert stats.times_to_resolve(incidents, NOW, timedelta(days=7)) == [3600.0, 86400.0]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([42.0], 0.95, 42.0),
        ([3600.0, 7200.0], 0.5, 5400.0),
        ([3600.0, 7200.0], 0.95, 7020.0),
        ([5.0, 1.0, 3.0, 2.0, 4.0], 0.5, 3.0),
        ([5.0, 1.0, 3.0, 2.0, 4.0], 1.0, 5.0),
    ],
)
def test_quantile_interpolates_linearly(values: list[float], q: float, expected: float) -> None:
    result = stats.quantile(values, q)
    assert result == (pytest.approx(expected) if expected is not None else None)


def test_priority_name_handles_missing_and_null() -> None:
    assert stats.priority_name({"priority": {"summary": "P2"}}) == "P2"
    assert stats.priority_name({"priority": None}) == "none"
    assert stats.priority_name({}) == "none"


def test_acknowledge_achievement_against_the_urgency_targets() -> None:
    targets = {"high": 900.0, "low": 3600.0}
    incidents = [
        # acked exactly at 15 min: met; re-acked later after an ack timeout: the first counts
        incident("A", "acknowledged", at(hours=2), acknowledgements=[{"at": at(hours=1)}]),
        incident(
            "B", "acknowledged", at(hours=2), acknowledgements=[{"at": at(minutes=100)}]
        ),  # 20 min
        # low, resolved without an acknowledgement after 50 min: met (1 h target)
        incident("C", "resolved", at(hours=3), "low", resolved_at=at(hours=2, minutes=10)),
        incident("D", "triggered", at(hours=5)),  # no response yet: counts nowhere
        incident("E", "resolved", at(days=2), resolved_at=at(days=1)),  # outside 24 h
    ]
    known = {"A": NOW - timedelta(hours=1, minutes=45)}  # A was first acked at +15 min
    day = stats.acknowledge_achievement(incidents, known, NOW, timedelta(days=1), targets)
    assert day == {("high", "met"): 1, ("high", "missed"): 1, ("low", "met"): 1}
    week = stats.acknowledge_achievement(incidents, known, NOW, timedelta(days=7), targets)
    assert week[("high", "missed")] == 2  # E: resolved a day later
    assert stats.acknowledge_achievement(incidents, known, NOW, timedelta(days=1), {}) == {}
