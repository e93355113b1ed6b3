"""Respond-within SLA rules (pure functions, the clock passed in)."""

from datetime import UTC, datetime, timedelta

from webhook.sla import (
    answered_at,
    is_breached,
    respond_by,
    seconds_left,
    sla_seconds,
    time_to_acknowledge,
)

T0 = datetime(2026, 11, 27, 12, tzinfo=UTC)
SLA = {"critical": 900.0, "warning": 3600.0, "info": 86400.0}


def test_sla_per_severity_and_route() -> None:
    assert sla_seconds("critical", SLA) == 900.0  # type: ignore[arg-type]
    assert sla_seconds("info", SLA, [None]) == 86400.0  # type: ignore[arg-type]
    assert sla_seconds("warning", SLA, [1800.0, None, 600.0]) == 600.0  # type: ignore[arg-type]
    assert respond_by(T0, 900) == T0 + timedelta(minutes=15)


def test_breach_rules() -> None:
    deadline = T0 + timedelta(minutes=15)
    later, sooner = deadline + timedelta(seconds=1), deadline - timedelta(seconds=1)
    assert not is_breached(deadline, None, None, deadline)  # exactly at the deadline: in time
    assert is_breached(deadline, None, None, later)
    assert not is_breached(deadline, sooner, None, later + timedelta(hours=1))
    assert not is_breached(deadline, None, sooner, later)  # resolution answers the SLA
    assert is_breached(deadline, later, None, later)  # a late ack is still a breach
    assert answered_at(later, sooner) == sooner
    assert seconds_left(deadline, T0) == 900.0 and seconds_left(deadline, later) == -1.0
    assert time_to_acknowledge(T0, T0 + timedelta(minutes=4)) == 240.0
    assert time_to_acknowledge(T0, T0 - timedelta(seconds=5)) == 0.0  # clock skew is not negative
