"""Fault injection shared by every fake upstream: latency, 429, 5xx, timeouts,
malformed JSON and failures in the middle of a paginated listing.

Faults are either queued (deterministic, consumed one per request: what tests use)
or probabilistic (seeded: what the demo uses to look like a real, flaky world).
"""

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Middleware

FaultKind = Literal["429", "500", "503", "timeout", "malformed", "latency"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Faults:
    latency: float = 0.0
    """Seconds added to every response."""
    retry_after: float = 1.0
    timeout_seconds: float = 30.0
    """How long a 'timeout' fault holds the request before answering."""
    probability: dict[FaultKind, float] = field(default_factory=dict)
    fail_page_after: int | None = None
    """Answer 500 to every page request past this many pages (mid-pagination failure)."""
    seed: int = 0
    queued: deque[FaultKind] = field(default_factory=deque)
    pages_served: int = 0
    requests: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def queue(self, *kinds: FaultKind) -> None:
        self.queued.extend(kinds)

    def clear(self) -> None:
        self.queued.clear()
        self.probability.clear()
        self.latency = 0.0
        self.fail_page_after = None
        self.pages_served = 0

    def next_fault(self) -> FaultKind | None:
        if self.queued:
            return self.queued.popleft()
        for kind, chance in self.probability.items():
            if self.rng.random() < chance:
                return kind
        return None


def is_page_request(request: web.Request) -> bool:
    """A follow-up page of a listing (cursor, starting_after or offset > 0)."""
    query = request.query
    return bool(
        query.get("cursor")
        or query.get("starting_after")
        or query.get("page[after]")
        or (query.get("offset") not in (None, "0"))
    )


def fault_middleware(faults: Faults, error_body: Callable[[int, str], web.Response]) -> Middleware:
    """Build a middleware applying `faults`; `error_body` renders the API's own error shape."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        faults.requests += 1
        if faults.latency:
            await asyncio.sleep(faults.latency)
        if is_page_request(request):
            faults.pages_served += 1
            if faults.fail_page_after is not None and faults.pages_served > faults.fail_page_after:
                return error_body(500, "injected failure in the middle of pagination")
        kind = faults.next_fault()
        if kind == "429":
            response = error_body(429, "Too Many Requests")
            response.headers["Retry-After"] = str(int(faults.retry_after))
            return response
        if kind in ("500", "503"):
            return error_body(int(kind), "injected server error")
        if kind == "timeout":
            await asyncio.sleep(faults.timeout_seconds)
        if kind == "latency":
            await asyncio.sleep(faults.timeout_seconds / 10)
        answer = await handler(request)
        if kind == "malformed" and isinstance(answer, web.Response):
            return web.Response(
                status=answer.status, text='{"truncated": [1, 2', content_type="application/json"
            )
        return answer

    return middleware
