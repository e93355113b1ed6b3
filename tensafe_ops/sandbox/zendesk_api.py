"""Fake Zendesk Support API over the simulated world (paths, auth, pagination and errors
as the real API; validated against tests/contracts/zendesk.json by the tests).

- `GET /api/v2/incremental/tickets/cursor(.json)`: cursor-based incremental export ordered
  by (generated_timestamp, id); `start_time` or an opaque `cursor`, `per_page` <= 1000,
  `include=metric_sets` side-loads TicketMetricObjects. Unlike the real API, changes of
  the last minute are NOT held back (the world's clock is the only clock).
- `GET /api/v2/organizations(.json)`: cursor (`page[size]` <= 100, `page[after]`) or
  offset (`page`, `per_page`) pagination.
- `POST /api/v2/tickets(.json)` and `GET /api/v2/tickets/{id}(.json)`; `Idempotency-Key`
  replays the first answer for the same body (`x-idempotency-lookup: hit`) and rejects a
  different body with 400.
- Basic auth `{email}/token:{token}`, else 401 `{"error": "Couldn't authenticate you"}`.
- The incremental export's own limit, as Zendesk: 10 requests in any minute, 429 with
  `Retry-After` past it. Tests and benchmarks that run the exporter faster than real time
  shrink the window (`limit_window_seconds`) in step with the source's pace; nothing turns
  the limit off.
"""

import base64
import binascii
import hashlib
import heapq
import json
import math
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from aiohttp import BasicAuth, web

from tensafe_ops.sandbox import zendesk_world
from tensafe_ops.sandbox.faults import Faults, Handler, fault_middleware
from tensafe_ops.sandbox.received import inspectable
from tensafe_ops.sandbox.world import World

MAX_EXPORT_PAGE = 1000
MAX_CURSOR_PAGE = 100
_ERRORS = {
    400: "BadRequest",
    401: "Couldn't authenticate you",
    404: "RecordNotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}

Position = tuple[int, int]
"""(generated_timestamp, ticket id): the export's sort key."""


def error_body(status: int, message: str) -> web.Response:
    """Zendesk's error shape: `error` (a code or, for 401, the sentence) + `description`."""
    title = _ERRORS.get(status, "Error")
    body: dict[str, Any] = {"error": title}
    if status != 401:
        body["description"] = message
    return web.json_response(body, status=status)


def encode_cursor(position: Position, direction: str = "") -> str:
    """Opaque like Zendesk's (base64 of `1576613539.0||467|`)."""
    raw = f"{position[0]}.0||{position[1]}|{direction}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(token: str) -> tuple[Position, str]:
    raw = base64.urlsafe_b64decode(token.encode()).decode()
    stamp, _, rest = raw.partition("||")
    ticket_id, _, direction = rest.partition("|")
    return (int(float(stamp)), int(ticket_id)), direction


def _position(ticket: dict[str, Any]) -> Position:
    stamp = ticket.get("generated_timestamp")
    if stamp is None:  # a hand-written world file may leave it out
        stamp = int(zendesk_world.parse_time(ticket["updated_at"]))
    return int(stamp), int(ticket["id"])


EXPORT_LIMIT_PER_MINUTE = 10
"""Zendesk's incremental export: 10 requests a minute (30 with the High Volume API add-on)."""


class _SlidingWindow:
    """At most `limit` requests in any `window` seconds (the incremental export's limit)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.seen: deque[float] = deque()

    def retry_after(self) -> int | None:
        now = time.monotonic()
        while self.seen and self.seen[0] <= now - self.window:
            self.seen.popleft()
        if len(self.seen) >= self.limit:
            return max(1, math.ceil(self.seen[0] + self.window - now))
        self.seen.append(now)
        return None


def make_app(
    world: World,
    faults: Faults,
    *,
    credentials: dict[str, str],
    incremental_limit_per_minute: int = EXPORT_LIMIT_PER_MINUTE,
    limit_window_seconds: float = 60.0,
) -> web.Application:
    """The fake; the export allows `incremental_limit_per_minute` requests in any sliding
    `limit_window_seconds` window (Zendesk: 10 in 60 s; tests shrink the window)."""
    window = _SlidingWindow(incremental_limit_per_minute, limit_window_seconds)
    fake = _FakeZendesk(world, credentials, window)
    app = web.Application(middlewares=[fault_middleware(faults, error_body), fake.auth])
    inspectable(app)
    for suffix in ("", ".json"):
        app.router.add_get(f"/api/v2/incremental/tickets/cursor{suffix}", fake.incremental)
        app.router.add_get(f"/api/v2/organizations{suffix}", fake.organizations)
        app.router.add_post(f"/api/v2/tickets{suffix}", fake.create_ticket)
    app.router.add_get("/api/v2/tickets/{ticket_id}", fake.show_ticket)
    return app


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


class _FakeZendesk:
    def __init__(self, world: World, credentials: dict[str, str], window: _SlidingWindow) -> None:
        self.world = world
        self.login = f"{credentials['email']}/token"
        self.password = credentials["token"]
        self.window = window
        self.idempotency: dict[str, tuple[str, int]] = {}
        """Idempotency-Key -> (sha256 of the first body, ticket id it created)."""

    @web.middleware
    async def auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        try:
            given = BasicAuth.decode(header) if header else None
        except ValueError:
            given = None
        if given is None or (given.login, given.password) != (self.login, self.password):
            response = error_body(401, "unauthenticated")
            response.headers["WWW-Authenticate"] = 'Basic realm="Web Password"'
            return response
        return await handler(request)

    async def incremental(self, request: web.Request) -> web.Response:
        if (wait := self.window.retry_after()) is not None:
            response = error_body(429, "Rate limit for incremental exports exceeded")
            response.headers["Retry-After"] = str(wait)
            return response
        query = request.query
        try:
            per_page = min(MAX_EXPORT_PAGE, max(1, int(query.get("per_page", MAX_EXPORT_PAGE))))
            if "cursor" in query:
                position, direction = decode_cursor(query["cursor"])
            elif "start_time" in query:
                position, direction = (int(query["start_time"]), 0), ""
            else:
                return error_body(400, "start_time or cursor is required")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return error_body(400, "invalid start_time or cursor")
        tickets = self.world.zendesk.get("tickets", [])
        if direction == "b":
            page, more = _before(tickets, position, per_page), False
        else:
            page = _after(tickets, position, per_page + 1)
            page, more = page[:per_page], len(page) > per_page
        origin = _origin(request)
        base = f"{origin}/api/v2/incremental/tickets/cursor.json"
        extra = "".join(f"&{k}={query[k]}" for k in ("per_page", "include") if k in query)
        after_cursor = encode_cursor(_position(page[-1]) if page else position)
        before_cursor = encode_cursor(_position(page[0]), "b") if page else None
        body: dict[str, Any] = {
            "tickets": [_render(t, f"{origin}/api/v2/tickets") for t in page],
            "after_cursor": after_cursor,
            "after_url": f"{base}?cursor={after_cursor}{extra}",
            "before_cursor": before_cursor,
            "before_url": f"{base}?cursor={before_cursor}{extra}" if before_cursor else None,
            "end_of_stream": not more,
        }
        if "metric_sets" in query.get("include", "").split(","):
            wanted = {t["id"] for t in page}
            body["metric_sets"] = [
                _render(m, f"{origin}/api/v2/ticket_metrics")
                for m in self.world.zendesk.get("ticket_metrics", [])
                if m["ticket_id"] in wanted
            ]
        return web.json_response(body)

    async def organizations(self, request: web.Request) -> web.Response:
        orgs = sorted(self.world.zendesk.get("organizations", []), key=lambda o: int(o["id"]))
        query = request.query
        origin = _origin(request)
        base = f"{origin}/api/v2/organizations.json"
        try:
            if "page[size]" in query or "page[after]" in query:
                size = min(MAX_CURSOR_PAGE, max(1, int(query.get("page[size]", MAX_CURSOR_PAGE))))
                after_id = (
                    decode_cursor(query["page[after]"])[0][1] if "page[after]" in query else 0
                )
                per_page, number = size, 0
            else:
                per_page = min(MAX_CURSOR_PAGE, max(1, int(query.get("per_page", MAX_CURSOR_PAGE))))
                number = max(1, int(query.get("page", 1)))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return error_body(400, "invalid pagination parameters")
        if number == 0:  # cursor pagination
            rest = [o for o in orgs if int(o["id"]) > after_id]
            page, has_more = rest[:per_page], len(rest) > per_page
            after = encode_cursor((0, int(page[-1]["id"]))) if page else None
            before = encode_cursor((0, int(page[0]["id"])), "b") if page else None
            next_url = f"{base}?page[size]={per_page}&page[after]={after}" if has_more else None
            return web.json_response(
                {
                    "organizations": [_render(o, f"{origin}/api/v2/organizations") for o in page],
                    "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
                    "links": {"next": next_url, "prev": None},
                }
            )
        page = orgs[(number - 1) * per_page : number * per_page]
        last = number * per_page >= len(orgs)
        return web.json_response(
            {
                "organizations": [_render(o, f"{origin}/api/v2/organizations") for o in page],
                "count": len(orgs),
                "next_page": None if last else f"{base}?page={number + 1}&per_page={per_page}",
                "previous_page": (
                    None if number == 1 else f"{base}?page={number - 1}&per_page={per_page}"
                ),
            }
        )

    async def show_ticket(self, request: web.Request) -> web.Response:
        wanted = request.match_info["ticket_id"].removesuffix(".json")
        for ticket in self.world.zendesk.get("tickets", []):
            if str(ticket["id"]) == wanted:
                url = f"{_origin(request)}/api/v2/tickets"
                return web.json_response({"ticket": _render(ticket, url)})
        return error_body(404, "Not found")

    async def create_ticket(self, request: web.Request) -> web.Response:
        raw = await request.read()
        key = request.headers.get("Idempotency-Key")
        digest = hashlib.sha256(raw).hexdigest()
        if key is not None and key in self.idempotency:
            seen_digest, ticket_id = self.idempotency[key]
            if seen_digest != digest:
                return web.json_response(
                    {
                        "error": "IdempotentRequestError",
                        "description": "Request body does not match the original request "
                        "made with this Idempotency-Key",
                    },
                    status=400,
                )
            ticket = next(t for t in self.world.zendesk["tickets"] if t["id"] == ticket_id)
            return _created(ticket, _origin(request), lookup="hit")
        try:
            fields = json.loads(raw)["ticket"]
            comment = fields.get("comment") or {}
            description = (
                comment.get("body") or comment.get("html_body") or fields.get("description")
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return error_body(400, 'Request body must be {"ticket": {...}}')
        if not description:
            return web.json_response(
                {
                    "error": "RecordInvalid",
                    "description": "Record validation errors",
                    "details": {"description": [{"description": "Description: cannot be blank"}]},
                },
                status=422,
            )
        ticket = _new_ticket(self.world, fields, str(description))
        if key is not None:
            self.idempotency[key] = (digest, ticket["id"])
        return _created(ticket, _origin(request), lookup=None if key is None else "miss")


def _after(
    tickets: Iterable[dict[str, Any]], position: Position, count: int
) -> list[dict[str, Any]]:
    """The first `count` tickets strictly after `position` (O(n log count), no full sort)."""
    return heapq.nsmallest(count, (t for t in tickets if _position(t) > position), key=_position)


def _before(
    tickets: Iterable[dict[str, Any]], position: Position, count: int
) -> list[dict[str, Any]]:
    page = heapq.nlargest(count, (t for t in tickets if _position(t) < position), key=_position)
    return page[::-1]


def _render(item: dict[str, Any], collection_url: str) -> dict[str, Any]:
    """The stored object plus its API `url` (which depends on the host serving it)."""
    return {**item, "url": f"{collection_url}/{item['id']}.json"}


def _created(ticket: dict[str, Any], origin: str, *, lookup: str | None) -> web.Response:
    response = web.json_response(
        {"ticket": _render(ticket, f"{origin}/api/v2/tickets")}, status=201
    )
    response.headers["Location"] = f"{origin}/api/v2/tickets/{ticket['id']}.json"
    if lookup is not None:
        response.headers["x-idempotency-lookup"] = lookup
    return response


def _new_ticket(world: World, fields: dict[str, Any], description: str) -> dict[str, Any]:
    zendesk = world.zendesk
    tickets = zendesk.setdefault("tickets", [])
    ticket_id = max((t["id"] for t in tickets), default=0) + 1
    now = world.now.timestamp()
    tags = fields.get("tags") or []
    ticket: dict[str, Any] = {
        "id": ticket_id,
        "external_id": fields.get("external_id"),
        "type": fields.get("type"),
        "subject": fields.get("subject"),
        "raw_subject": fields.get("subject") or "",
        "description": description,
        "priority": fields.get("priority"),
        "status": fields.get("status") or "new",
        "requester_id": fields.get("requester_id"),
        "submitter_id": fields.get("submitter_id") or fields.get("requester_id"),
        "assignee_id": fields.get("assignee_id"),
        "organization_id": fields.get("organization_id"),
        "group_id": fields.get("group_id"),
        "collaborator_ids": [],
        "follower_ids": [],
        "email_cc_ids": [],
        "custom_fields": fields.get("custom_fields") or [],
        "tags": sorted(set([tags] if isinstance(tags, str) else tags)),
        "via": {"channel": "api"},
        # Zendesk keeps a due date on tasks only.
        "due_at": fields.get("due_at") if fields.get("type") == "task" else None,
        "has_incidents": False,
        "is_public": True,
        "created_at": zendesk_world.iso(now),
        "updated_at": zendesk_world.iso(now),
        "generated_timestamp": int(now),
    }
    for key in ("type", "priority"):  # the contract's enums don't admit null: leave them out
        if ticket[key] is None:
            del ticket[key]
    tickets.append(ticket)
    zendesk.setdefault("ticket_metrics", []).append(
        zendesk_world.metric_object(ticket_id, now, now, None, None)
    )
    return ticket
