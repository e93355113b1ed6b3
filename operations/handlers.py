"""The operator API's HTTP handlers (`/api/v1/...`, described by `/api/v1/openapi.json`).

GET endpoints accept the API credentials or the read-only ones; writes need the API
credentials (403 for read-only ones). Bad input is a 400 naming the field; a store failure is a
503; Prometheus trouble is never an HTTP error: the answer says what could not be measured.
"""

import re
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import SQLAlchemyError

from operations import checklist, views
from operations.openapi import spec_for
from operations.picture import Picture
from operations.prometheus import Prometheus
from operations.service import Operations, OverrideError
from operations.store import EVENT_KINDS
from tensafe_ops.auth import authorized
from tensafe_ops.log import get_logger

log = get_logger("tensafe_ops.operations")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPERATIONS_KEY = web.AppKey("operations", Operations)
_STORE_ERRORS = (SQLAlchemyError, sqlite3.Error, OSError, TimeoutError)
_DURATION = re.compile(r"^(\d{1,6})\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MARKS_BACK = 7
"""Checklist steps can be marked for today and the 7 days before."""


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def guarded(handler: Handler, *, write: bool = False) -> Handler:
    async def guard(request: web.Request) -> web.StreamResponse:
        ops = request.app[OPERATIONS_KEY]
        header = request.headers.get("Authorization")
        if not authorized(ops.api_auth, header):
            read_only = ops.cfg.read_auth is not None and authorized(ops.cfg.read_auth, header)
            if not read_only:
                response = error(401, "missing or wrong credentials")
                response.headers["WWW-Authenticate"] = (
                    'Bearer realm="tensafe-ops", Basic realm="tensafe-ops"'
                )
                return response
            if write:
                return error(403, "these credentials may only read")
        try:
            return await handler(request)
        except _STORE_ERRORS as exc:
            log.error("operator_store_unavailable", error=type(exc).__name__)
            return error(503, "state store unavailable, retry later")

    return guard


class ParameterError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _prometheus(request: web.Request) -> Prometheus | None:
    ops = request.app[OPERATIONS_KEY]
    try:
        return ops.prometheus(request.headers.get("X-Prometheus-URL"))
    except OverrideError as exc:
        raise ParameterError("X-Prometheus-URL", str(exc)) from None


async def _picture(request: web.Request) -> Picture:
    ops = request.app[OPERATIONS_KEY]
    return await ops.picture(ops.clock(), _prometheus(request))


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    # isascii: '²' is a digit to str.isdigit() but not to int().
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise ParameterError(name, f"{name} must be an integer from {low} to {high}")
    return int(text)


def parse_since(text: str, now: datetime) -> datetime:
    """`8h`, `30m`, `2d`, `1w`, or an RFC 3339 time with a time zone."""
    match = _DURATION.match(text.strip().lower())
    if match:
        return now - timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(
            "since", "since must be a duration (8h, 30m, 2d) or an RFC 3339 time"
        ) from None
    if moment.tzinfo is None:
        raise ParameterError("since", "since needs a time zone (e.g. 2026-11-27T00:00:00Z)")
    return moment


def _day(request: web.Request, today: date) -> date:
    text = request.match_info["date"]
    day = views.parse_day(text, today)
    if day is None:
        raise ParameterError("date", "date must be today, yesterday or YYYY-MM-DD")
    return day


def json_answer(handler: Callable[[web.Request], Awaitable[Any]]) -> Handler:
    """Handlers return JSON-able data (or a Response); a ParameterError becomes a 400."""

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            result = await handler(request)
        except ParameterError as exc:
            return error(400, str(exc), field=exc.field)
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(result)

    return answer


# -- reading -----------------------------------------------------------------------------------


def picture_view(view: Callable[[Picture], Any]) -> Handler:
    """A GET handler answering `view` of the request's picture."""

    @json_answer
    async def answer(request: web.Request) -> Any:
        return view(await _picture(request))

    return answer


def status_answer(p: Picture) -> dict[str, Any]:
    """GET /api/v1/status (also the status page's data): the board with today's progress."""
    progress = checklist.checklist(p)["progress"]
    return views.status(p, {"day": p.day.isoformat(), **progress})


@json_answer
async def get_status(request: web.Request) -> Any:
    return status_answer(await _picture(request))


@json_answer
async def get_incidents(request: web.Request) -> Any:
    ops = request.app[OPERATIONS_KEY]
    since = parse_since(request.query.get("since", "8h"), ops.clock())
    p = await _picture(request)
    return views.incidents(p, since)


@json_answer
async def get_customers(request: web.Request) -> Any:
    band = request.query.get("band")
    if band is not None and band not in views.rules_bands():
        raise ParameterError("band", "band must be one of at_risk, watch, healthy")
    limit = _int(request, "limit", 100, 1, 1000)
    offset = _int(request, "offset", 0, 0, 1_000_000)
    return views.customers(await _picture(request), band, limit, offset)


@json_answer
async def get_daily(request: web.Request) -> Any:
    ops = request.app[OPERATIONS_KEY]
    now = ops.clock()
    day = _day(request, now.astimezone(UTC).date())
    if day == now.astimezone(UTC).date():
        p = await _picture(request)
        stored = p.today
        return {
            "day": day.isoformat(),
            "live": True,
            "recorded_at": views.iso(stored.recorded_at) if stored else None,
            "morning_recorded_at": views.iso(stored.morning_at) if stored else None,
            "summary": views.daily_summary(p),
            "morning_snapshot": views.morning_snapshot(p),
            "key_metrics": checklist.key_metrics(p),
        }
    row = await ops.store.day(day)
    if row is None or row.record is None:
        return error(404, f"no daily record for {day.isoformat()}", field="date")
    record = row.record
    return {
        "day": day.isoformat(),
        "live": False,
        "recorded_at": views.iso(row.recorded_at),
        "morning_recorded_at": views.iso(row.morning_at),
        "summary": record["summary"],
        "morning_snapshot": record["morning_snapshot"],
        "key_metrics": record["key_metrics"],
    }


@json_answer
async def get_handoff(request: web.Request) -> Any:
    shift = request.query.get("shift", "night")
    if shift not in ("night", "day"):
        raise ParameterError("shift", "shift must be night or day")
    return checklist.handoff(await _picture(request), shift)  # type: ignore[arg-type]


@json_answer
async def get_checklist(request: web.Request) -> Any:
    ops = request.app[OPERATIONS_KEY]
    now = ops.clock()
    today = now.astimezone(UTC).date()
    day = _day(request, today)
    if day > today:
        raise ParameterError("date", "no checklist for a day that has not begun")
    if day == today:
        return checklist.checklist(await _picture(request))
    # A past day: the data answers stored with its record, people's marks as they are now.
    p = await ops.picture(datetime.combine(day, datetime.max.time(), tzinfo=UTC), None)
    row = p.today
    if row is None or row.record is None:
        return error(404, f"no daily record for {day.isoformat()}", field="date")
    result = checklist.checklist(
        p, row.record.get("checklist") or {}, row.record.get("key_metrics")
    )
    result["taken_at"] = views.iso(row.recorded_at)
    return result


@json_answer
async def list_events(request: web.Request) -> Any:
    ops = request.app[OPERATIONS_KEY]
    now = ops.clock()
    start = parse_since(request.query.get("from", "0s"), now)
    end_text = request.query.get("to")
    end = now + timedelta(days=30) if end_text is None else _time(end_text, "to")
    if end <= start:
        raise ParameterError("to", "to must be after from")
    return {"events": await ops.store.events(start, end)}


def _time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(name, f"{name} must be an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ParameterError(name, f"{name} needs a time zone")
    return moment


# -- writing -----------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("NUL characters are not allowed")
        return value


class DoneBody(_Body):
    step: str = Field(min_length=1, max_length=128)
    by: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)


class EventBody(_Body):
    start: datetime
    end: datetime
    kind: Literal["maintenance", "demo", "onboarding", "campaign", "spike", "other"]
    note: str = Field(min_length=1, max_length=1000)
    communicated: bool = False
    by: str = Field(default="api", min_length=1, max_length=200)


class EventPatch(_Body):
    communicated: bool


class RecordBody(_Body):
    post: bool = False


class PostBody(_Body):
    shift: Literal["night", "day"] = "night"
    by: str = Field(default="tensafe-admin", min_length=1, max_length=200)


def _body(model: type[_Body], raw: bytes) -> Any:
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "<body>"
        raise ParameterError(where, f"invalid request body: {first['msg']}") from None


@json_answer
async def mark_done(request: web.Request) -> Any:
    ops = request.app[OPERATIONS_KEY]
    now = ops.clock()
    today = now.astimezone(UTC).date()
    day = _day(request, today)
    if not today - timedelta(days=MARKS_BACK) <= day <= today:
        raise ParameterError(
            "date", f"steps can be marked for today and the {MARKS_BACK} days before"
        )
    body = _body(DoneBody, await request.read())
    if not checklist.valid_step(body.step):
        raise ParameterError(
            "step",
            "unknown step; people mark "
            + ", ".join(sorted(checklist.PEOPLE_STEPS))
            + " or incident.<id>.<"
            + "|".join(checklist.INCIDENT_STEPS)
            + ">",
        )
    mark = await ops.store.add_mark(day, body.step, body.by, body.note, now)
    return web.json_response(mark, status=201)


@json_answer
async def add_event(request: web.Request) -> Any:
    ops = request.app[OPERATIONS_KEY]
    body = _body(EventBody, await request.read())
    if body.start.tzinfo is None or body.end.tzinfo is None:
        raise ParameterError("start", "start and end need a time zone (RFC 3339)")
    if body.end <= body.start:
        raise ParameterError("end", "end must be after start")
    event = await ops.store.add_event(
        body.start, body.end, body.kind, body.note, body.communicated, body.by, ops.clock()
    )
    return web.json_response(event, status=201)


def _event_id(request: web.Request) -> int | None:
    text = request.match_info["id"]
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


@json_answer
async def patch_event(request: web.Request) -> Any:
    ops = request.app[OPERATIONS_KEY]
    event_id = _event_id(request)
    body = _body(EventPatch, await request.read())
    event = None if event_id is None else await ops.store.update_event(event_id, body.communicated)
    if event is None:
        return error(404, "no such event")
    return event


@json_answer
async def remove_event(request: web.Request) -> Any:
    ops = request.app[OPERATIONS_KEY]
    event_id = _event_id(request)
    if event_id is None or not await ops.store.remove_event(event_id):
        return error(404, "no such event")
    return {"id": event_id, "removed": True}


@json_answer
async def record_daily(request: web.Request) -> Any:
    ops = request.app[OPERATIONS_KEY]
    now = ops.clock()
    today = now.astimezone(UTC).date()
    day = _day(request, today)
    if day != today:
        raise ParameterError("date", "only today can be recorded (it is recorded from live data)")
    body = _body(RecordBody, await request.read())
    record = await ops.record_now(now, _prometheus(request))
    delivery = await ops.post_summary(today, record, now) if body.post else None
    return web.json_response(
        {
            "day": today.isoformat(),
            "recorded_at": views.iso(now),
            "summary": record["summary"],
            "posted_delivery_id": delivery,
        },
        status=201,
    )


@json_answer
async def post_handoff(request: web.Request) -> Any:
    ops = request.app[OPERATIONS_KEY]
    body = _body(PostBody, await request.read())
    destination = ops.cfg.handoff_slack or ops.cfg.summary_slack
    if ops.alerts is None or destination is None:
        return error(
            409,
            "no Slack destination for the handoff: set operator.handoff_slack "
            "(a webhook.destinations.slack name) and enable the webhook",
        )
    p = await ops.picture(ops.clock(), _prometheus(request))
    result = checklist.handoff(p, body.shift)
    now = p.now
    key = f"operator:handoff:{p.day.isoformat()}:{body.shift}:{int(now.timestamp())}"
    delivery = await ops.alerts.post_slack(destination, result["slack"], key, now)
    await ops.store.add_mark(p.day, "end.handoff_posted", body.by, f"Slack {destination}", now)
    return web.json_response(
        {"delivery_id": delivery, "destination": destination, **result}, status=201
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec_for(request.app))


def add_routes(app: web.Application) -> None:
    read = guarded
    routes = app.router
    routes.add_get("/api/v1/openapi.json", openapi)
    routes.add_get("/api/v1/status", read(get_status))
    routes.add_get("/api/v1/incidents", read(get_incidents))
    routes.add_get("/api/v1/support/summary", read(picture_view(views.support_summary)))
    routes.add_get("/api/v1/customers", read(get_customers))
    routes.add_get("/api/v1/customers/enterprise", read(picture_view(views.enterprise)))
    routes.add_get("/api/v1/metrics/morning-snapshot", read(picture_view(views.morning_snapshot)))
    routes.add_get("/api/v1/pulse", read(picture_view(views.pulse)))
    routes.add_get("/api/v1/capacity", read(picture_view(views.capacity)))
    routes.add_get("/api/v1/daily/{date}", read(get_daily))
    routes.add_post("/api/v1/daily/{date}", guarded(record_daily, write=True))
    routes.add_get("/api/v1/oncall/handoff", read(get_handoff))
    routes.add_post("/api/v1/oncall/handoff", guarded(post_handoff, write=True))
    routes.add_get("/api/v1/checklist/{date}", read(get_checklist))
    routes.add_post("/api/v1/checklist/{date}/done", guarded(mark_done, write=True))
    routes.add_get("/api/v1/events", read(list_events))
    routes.add_post("/api/v1/events", guarded(add_event, write=True))
    routes.add_patch("/api/v1/events/{id}", guarded(patch_event, write=True))
    routes.add_delete("/api/v1/events/{id}", guarded(remove_event, write=True))


__all__ = ["EVENT_KINDS", "OPERATIONS_KEY", "add_routes"]
