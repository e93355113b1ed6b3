"""The datetimes the webhook accepts, and how stored times are read back.

Times are stored as epoch seconds (floats) and read with `datetime.fromtimestamp`, which knows
years 1 to 9999 only: one stored value beyond that range used to fail every later read of its
row (listing alerts, routing through a maintenance window). So every datetime that comes in —
a maintenance window's start and end, Alertmanager's startsAt and endsAt, PagerDuty's
occurred_at — needs a time zone and must lie between 1970-01-01T00:00:00Z and
9999-12-31T23:59:59Z once in UTC, or it is refused with a 400 naming the field. Values stored
by older releases outside that range are read back clamped to it (`from_stored`), never raised.
"""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
"""Whole seconds: 23:59:59.999999 would round, as a float, to year 10000."""
BOUNDS = "between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z (in UTC)"
_READABLE = (datetime(1, 1, 1, tzinfo=UTC).timestamp(), LATEST.timestamp())


def bounded(moment: datetime) -> datetime:
    """`moment` in UTC; ValueError when it has no time zone or lies outside the bounds."""
    if moment.utcoffset() is None:
        raise ValueError("needs a time zone (RFC 3339, e.g. 2026-11-27T12:00:00Z)")
    if not EARLIEST <= moment <= LATEST:  # compared without converting: no overflow
        raise ValueError(f"must lie {BOUNDS}")
    return moment.astimezone(UTC)


def in_bounds(moment: datetime) -> bool:
    """For aware datetimes: inside the bounds (the parser's fast path)."""
    return EARLIEST <= moment <= LATEST


BoundedDatetime = Annotated[datetime, AfterValidator(bounded)]
"""A request field: a datetime with a zone inside the bounds, given back in UTC."""


def from_stored(seconds: float) -> datetime:
    """A stored epoch-seconds value as a UTC datetime, clamped to what can be represented."""
    low, high = _READABLE
    return datetime.fromtimestamp(min(max(seconds, low), high), UTC)
