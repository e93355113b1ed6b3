"""The clock is passed in everywhere so tests and the sandbox can move time."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

Clock = Callable[[], datetime]
ClockKind = Literal["world", "wall"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def world_clock(
    start: datetime, *, frozen: bool = False, elapsed: Callable[[], float] = time.monotonic
) -> Clock:
    """A clock that reads `start` now and advances in real time from there (a simulated
    world's `now`); `frozen` keeps it at `start`. `elapsed` is the seconds counter it advances
    with (monotonic: a wall-clock jump does not move it)."""
    origin = elapsed()

    def now() -> datetime:
        return start if frozen else start + timedelta(seconds=elapsed() - origin)

    return now


def demo_clock(
    start: datetime,
    kind: ClockKind,
    *,
    frozen: bool = False,
    elapsed: Callable[[], float] = time.monotonic,
) -> Clock:
    """The clock a demo measures its world with: the world's own (`world`: from its `now`,
    standing still when frozen) or the machine's (`wall`)."""
    return utcnow if kind == "wall" else world_clock(start, frozen=frozen, elapsed=elapsed)
