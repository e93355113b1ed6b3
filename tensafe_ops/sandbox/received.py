"""What a fake received, readable from outside: `GET /_sandbox/received?since=…`.

Every fake records each request it is sent (method, path with query, JSON body, the status it
answered, when) and lists them, oldest first, at `/_sandbox/received`:

- `since` (optional): an RFC 3339 time (`2026-11-27T12:00:00Z`) or Unix seconds; only
  requests received at or after it. Each answer carries `now`, to pass as the next `since`.
- `method` (optional, repeatable): only these methods (e.g. `method=POST`).

The list is read-only and bounded (the last `MAX_ENTRIES` requests). `/_sandbox/` paths are
neither recorded nor subject to the fake's auth or injected faults. Headers are not kept.
"""

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tensafe_ops.sandbox.faults import Handler

MAX_ENTRIES = 10_000
SANDBOX_PREFIX = "/_sandbox/"


@dataclass(frozen=True)
class Received:
    at: float
    """Unix time the request arrived (wall clock)."""
    method: str
    path: str
    """Path with its query string."""
    status: int
    """What the fake answered (injected faults included)."""
    body: Any
    """The body parsed as JSON, else as text; None when empty."""

    def to_json(self) -> dict[str, Any]:
        return {
            "at": _iso(self.at),
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "body": self.body,
        }


@dataclass
class ReceivedLog:
    clock: Callable[[], float] = time.time
    entries: deque[Received] = field(default_factory=lambda: deque(maxlen=MAX_ENTRIES))

    def since(
        self, moment: float | None = None, methods: frozenset[str] = frozenset()
    ) -> list[Received]:
        """Requests received at or after `moment` (all if None), of these methods (any if
        none given), oldest first."""
        return [
            entry
            for entry in self.entries
            if (moment is None or entry.at >= moment) and (not methods or entry.method in methods)
        ]


RECEIVED_KEY = web.AppKey("sandbox_received", ReceivedLog)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def parse_since(raw: str) -> float:
    """Unix seconds or an RFC 3339 time (`Z` or an offset; a naive time is taken as UTC)."""
    try:
        return float(raw)
    except ValueError:
        pass
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _body(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _list(request: web.Request) -> web.Response:
    log = request.app[RECEIVED_KEY]
    now = log.clock()
    raw = request.query.get("since")
    try:
        since = None if raw is None else parse_since(raw)
    except ValueError:
        return web.json_response(
            {
                "error": "invalid since",
                "detail": f"{raw!r} is neither Unix seconds nor an RFC 3339 time",
            },
            status=400,
        )
    methods = frozenset(m.upper() for m in request.query.getall("method", []))
    entries = log.since(since, methods)
    return web.json_response({"received": [e.to_json() for e in entries], "now": _iso(now)})


def inspectable(app: web.Application, clock: Callable[[], float] = time.time) -> ReceivedLog:
    """Record every request `app` receives and serve the list; call before the app starts.

    The recording middleware goes first, so it sees the answer a client got, injected faults
    and auth failures included; `/_sandbox/` requests skip the fake's other middlewares.
    """
    log = ReceivedLog(clock)

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(SANDBOX_PREFIX):
            return await request.match_info.handler(request)
        at = log.clock()
        body = _body(await request.read()) if request.can_read_body else None
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            log.entries.append(Received(at, request.method, request.path_qs, exc.status, body))
            raise
        log.entries.append(Received(at, request.method, request.path_qs, response.status, body))
        return response

    app.middlewares.insert(0, record)
    app[RECEIVED_KEY] = log
    app.router.add_get("/_sandbox/received", _list)
    return log
