"""Shared helpers for talking to upstream APIs: rate limiting, retries, thread offload.

Every upstream failure is an `UpstreamError` with a `kind` (a bounded label) and a
`retryable` flag; 429s carry the server's `Retry-After`.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

T = TypeVar("T")

ErrorKind = Literal[
    "rate_limited",
    "server_error",
    "timeout",
    "network",
    "malformed",
    "auth",
    "client_error",
]


class UpstreamError(Exception):
    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in ("rate_limited", "server_error", "timeout", "network")


def parse_retry_after(value: str | None, default: float = 60.0) -> float:
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def classify_status(status: int, retry_after: str | None = None) -> UpstreamError | None:
    """Map an HTTP status to an UpstreamError (None for success)."""
    if status < 400:
        return None
    if status == 429:
        return UpstreamError(
            "rate_limited",
            "rate limited (429)",
            status=429,
            retry_after=parse_retry_after(retry_after),
        )
    if status in (401, 403):
        return UpstreamError("auth", f"authentication failed ({status})", status=status)
    if status >= 500:
        return UpstreamError("server_error", f"server error ({status})", status=status)
    return UpstreamError("client_error", f"request rejected ({status})", status=status)


def backoff_delay(attempt: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Capped exponential backoff with full jitter (attempt starts at 1)."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


class RateLimiter:
    """Token bucket: at most `per_minute` acquisitions per minute, bursts up to `burst`."""

    def __init__(
        self,
        per_minute: float,
        *,
        burst: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.capacity = burst if burst is not None else max(1.0, min(per_minute / 6, 50.0))
        self.tokens = self.capacity
        self.monotonic = monotonic
        self.updated = monotonic()
        self.lock = asyncio.Lock()

    def spent(self, seconds_ago: float) -> None:
        """Someone else took a token `seconds_ago` (a destination taken over from another
        replica): the bucket holds what it would have refilled since."""
        refilled = max(0.0, seconds_ago) * self.rate
        self.tokens = min(self.capacity, self.capacity - 1 + refilled)
        self.updated = self.monotonic()

    def penalize(self, seconds: float) -> None:
        """After a 429, spend the tokens the server says we do not have."""
        self.tokens = min(self.tokens, 0.0) - seconds * self.rate

    def spend_now(self) -> None:
        """The token `acquire` took is spent only now (the request waited for something else
        in between, such as a write): the refill counts from here, so requests stay at least
        `1/rate` apart however long that wait was."""
        self.updated = self.monotonic()

    async def acquire(self) -> None:
        async with self.lock:
            while True:
                now = self.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    max_retries: int,
    on_retry: Callable[[UpstreamError, float], None] | None = None,
    backoff_base: float = 1.0,
    backoff_cap: float = 60.0,
) -> T:
    """Run `call`, retrying retryable UpstreamErrors: Retry-After on 429, else jittered backoff.

    A Retry-After longer than `backoff_cap` is not waited for: the error is raised at once,
    so the refresh fails now (its source shows down) instead of sleeping through its budget,
    and the runner tries again later (`exporter.runner.next_delay`)."""

    def worth_retrying(exc: BaseException) -> bool:
        if not isinstance(exc, UpstreamError) or not exc.retryable:
            return False
        return exc.retry_after is None or exc.retry_after <= backoff_cap

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = backoff_delay(state.attempt_number, base=backoff_base, cap=backoff_cap)
        if isinstance(exc, UpstreamError):
            if exc.retry_after is not None:
                delay = exc.retry_after
            if on_retry is not None:
                on_retry(exc, delay)
        return delay

    retrying = AsyncRetrying(
        retry=retry_if_exception(worth_retrying),
        stop=stop_after_attempt(max_retries + 1),
        wait=wait,
        reraise=True,
    )
    result: T = await retrying(call)
    return result


async def offload(func: Callable[[], T], *, seconds: float) -> T:
    """Run a blocking SDK call in a worker thread so the event loop never blocks.

    On timeout the awaiting task is released; the SDK's own request timeout ends the thread.
    """
    try:
        async with asyncio.timeout(seconds):  # not wait_for: see exporter/runner.py
            return await asyncio.to_thread(func)
    except TimeoutError:
        raise UpstreamError("timeout", f"call did not finish within {seconds:.0f}s") from None
