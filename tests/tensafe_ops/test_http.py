"""The token bucket every upstream call and every delivery waits on."""

import pytest

from tensafe_ops.http import RateLimiter


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_bucket_taken_over_carries_on_from_the_last_spend_elsewhere() -> None:
    """A destination another replica sent to a moment ago: the next send waits for the
    rest of the interval; one it last sent to long ago goes at once."""
    clock = Monotonic()
    limiter = RateLimiter(60, burst=1, monotonic=clock)  # one a second
    limiter.spent(0.25)
    assert limiter.tokens == pytest.approx(0.25)  # three quarters of a second to wait
    limiter.spent(30.0)
    assert limiter.tokens == 1.0  # refilled, no more than the burst
    await limiter.acquire()  # immediate
    assert limiter.tokens == pytest.approx(0.0)
