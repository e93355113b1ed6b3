"""Fake PagerDuty REST API v2 over the simulated world.

Answers like api.pagerduty.com for the operations in the shared contract: token auth,
classic pagination (`limit` <= 100, `offset`, `more`, `total=true`) with the hard cap
`offset + limit <= 10000` (HTTP 400 beyond), the 30-day default window of `GET /incidents`
unless `date_range=all` or `since`/`until` are given, and PagerDuty's error body
`{"error": {"message", "code", "errors"}}` for every failure, injected ones included.
"""

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from tensafe_ops.sandbox.faults import Faults, fault_middleware
from tensafe_ops.sandbox.pagerduty_world import parse
from tensafe_ops.sandbox.received import inspectable
from tensafe_ops.sandbox.world import World

OFFSET_CAP = 10_000
MAX_LIMIT = 100
DEFAULT_LIMIT = 25
DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=183)
INCIDENT_STATUSES = ("triggered", "acknowledged", "resolved")
URGENCIES = ("high", "low")

_ERROR_CODES = {400: 2001, 401: 2006, 403: 2010, 404: 2100, 429: 2020}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.errors = list(errors)


def error_response(status: int, message: str, errors: Iterable[str] = ()) -> web.Response:
    """PagerDuty's generic error body (code omitted for 5xx, as the API does)."""
    error: dict[str, Any] = {"message": message}
    if status in _ERROR_CODES:
        error["code"] = _ERROR_CODES[status]
    details = list(errors)
    if details:
        error["errors"] = details
    return web.json_response({"error": error}, status=status)


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "Invalid Input Provided", [f"{name} must be an integer."]) from None
    if value < 0:
        raise ApiError(400, "Invalid Input Provided", [f"{name} must not be negative."])
    return value


def _time_param(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return parse(raw)
    except ValueError:
        raise ApiError(400, "Invalid Input Provided", [f"{name} is not a valid date."]) from None


def _choices(request: web.Request, name: str, allowed: tuple[str, ...], what: str) -> set[str]:
    values = set(request.query.getall(name, []))
    if values - set(allowed):
        raise ApiError(
            400,
            "Invalid Input Provided",
            [f"{what} must be a list of {', '.join(allowed[:-1])}, or {allowed[-1]}."],
        )
    return values


def paginate(
    request: web.Request, wrapper: str, objects: list[dict[str, Any]], offset_cap: int
) -> web.Response:
    """One page of `objects` under classic pagination, refusing past the offset cap."""
    limit = min(_int_param(request, "limit", DEFAULT_LIMIT), MAX_LIMIT) or DEFAULT_LIMIT
    offset = _int_param(request, "offset", 0)
    if offset + limit > offset_cap:
        raise ApiError(
            400,
            "Invalid Input Provided",
            [f"Offset plus limit must not exceed {offset_cap}."],
        )
    page = objects[offset : offset + limit]
    wants_total = request.query.get("total", "false").lower() == "true"
    return web.json_response(
        {
            wrapper: page,
            "limit": limit,
            "offset": offset,
            "more": offset + len(page) < len(objects),
            "total": len(objects) if wants_total else None,
        }
    )


def _incident_window(request: web.Request, now: datetime) -> tuple[datetime, datetime] | None:
    """The created_at window: none with date_range=all, else since/until (30 days default)."""
    if request.query.get("date_range") == "all":
        return None
    since, until = _time_param(request, "since"), _time_param(request, "until")
    until = until or now
    since = since or until - DEFAULT_WINDOW
    if since > until:
        raise ApiError(400, "Invalid Input Provided", ["since must be before until."])
    if until - since > MAX_WINDOW:
        raise ApiError(400, "Invalid Input Provided", ["The date range may not exceed 6 months."])
    return since, until


class _FakeRestApi:
    """Request handlers over one world; `offset_cap` is the pagination hard limit."""

    def __init__(self, world: World, offset_cap: int) -> None:
        self.world = world
        self.offset_cap = offset_cap

    def data(self, kind: str) -> list[dict[str, Any]]:
        return self.world.pagerduty.get(kind, [])

    async def list_incidents(self, request: web.Request) -> web.Response:
        statuses = _choices(request, "statuses[]", INCIDENT_STATUSES, "Status")
        urgencies = _choices(request, "urgencies[]", URGENCIES, "Urgency")
        service_ids = set(request.query.getall("service_ids[]", []))
        window = _incident_window(request, self.world.now)

        def wanted(incident: dict[str, Any]) -> bool:
            if window is not None and not (window[0] <= parse(incident["created_at"]) < window[1]):
                return False
            return (
                (not statuses or incident["status"] in statuses)
                and (not urgencies or incident["urgency"] in urgencies)
                and (not service_ids or incident["service"]["id"] in service_ids)
            )

        matches = sorted(
            (i for i in self.data("incidents") if wanted(i)),
            key=lambda i: int(i["incident_number"]),
            reverse=request.query.get("sort_by", "").endswith(":desc"),
        )
        return paginate(request, "incidents", matches, self.offset_cap)

    async def list_oncalls(self, request: web.Request) -> web.Response:
        """On-call entries overlapping [since, until] (default: now), optionally earliest."""
        policy_ids = set(request.query.getall("escalation_policy_ids[]", []))
        user_ids = set(request.query.getall("user_ids[]", []))
        since = _time_param(request, "since") or self.world.now
        until = _time_param(request, "until") or since
        matches = [
            oncall
            for oncall in self.data("oncalls")
            if parse(oncall["start"]) <= until
            and parse(oncall["end"]) > since
            and (not policy_ids or oncall["escalation_policy"]["id"] in policy_ids)
            and (not user_ids or oncall["user"]["id"] in user_ids)
        ]
        matches.sort(key=lambda o: (o["escalation_policy"]["id"], o["escalation_level"]))
        if request.query.get("earliest", "false").lower() == "true":
            earliest: dict[tuple[str, int, str], dict[str, Any]] = {}
            for oncall in matches:
                key = (
                    oncall["escalation_policy"]["id"],
                    int(oncall["escalation_level"]),
                    oncall["user"]["id"],
                )
                if key not in earliest or oncall["start"] < earliest[key]["start"]:
                    earliest[key] = oncall
            matches = list(earliest.values())
        return paginate(request, "oncalls", matches, self.offset_cap)

    async def list_services(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "").lower()
        services = [s for s in self.data("services") if query in s["name"].lower()]
        return paginate(request, "services", services, self.offset_cap)

    async def get_service(self, request: web.Request) -> web.Response:
        for service in self.data("services"):
            if service["id"] == request.match_info["id"]:
                return web.json_response({"service": service})
        raise ApiError(404, "Not Found")


def make_app(
    world: World,
    faults: Faults,
    *,
    credentials: dict[str, str],
    offset_cap: int = OFFSET_CAP,
) -> web.Application:
    """The fake REST API; `offset_cap` is PagerDuty's 10,000 unless a test lowers it."""
    expected_auth = f"Token token={credentials['token']}"

    def injected_error(status: int, message: str) -> web.Response:
        response = error_response(status, message)
        if status == 429:
            response.headers["ratelimit-limit"] = "960"
            response.headers["ratelimit-remaining"] = "0"
            response.headers["ratelimit-reset"] = str(int(faults.retry_after))
        return response

    @web.middleware
    async def auth_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Authorization") != expected_auth:
            return error_response(401, "Authentication failed")
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, str(exc), exc.errors)

    api = _FakeRestApi(world, offset_cap)
    app = web.Application(middlewares=[fault_middleware(faults, injected_error), auth_and_errors])
    inspectable(app)
    app.router.add_get("/incidents", api.list_incidents)
    app.router.add_get("/oncalls", api.list_oncalls)
    app.router.add_get("/services", api.list_services)
    app.router.add_get("/services/{id}", api.get_service)
    return app
