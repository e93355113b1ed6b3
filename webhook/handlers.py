"""HTTP handlers: Alertmanager in, acknowledgements, maintenance windows, dead letters.

Status codes follow what the sender does with them: Alertmanager retries 5xx only, so 2xx
means durably stored (the notification committed to the journal, from which `webhook.ingest`
derives alerts and outbox rows in one transaction), 400/401/413 mean the
request itself is wrong and will stay wrong, and 503 means "try again" (store unavailable).
"""

import asyncio
import hashlib
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import SQLAlchemyError

from tensafe_ops.bodies import undecodable
from tensafe_ops.clock import Clock
from tensafe_ops.keys import API_READ_AUTH_KEY
from tensafe_ops.log import debug_logging, get_logger
from tensafe_ops.storage import within
from webhook.auth import authorized, pagerduty_signature_valid
from webhook.config import Auth, WebhookConfig
from webhook.ids import parse_id
from webhook.journal import Journal
from webhook.metrics import WebhookStats
from webhook.paging import Page, PageError, next_url, parse_page
from webhook.payload import PayloadError, parse_notification
from webhook.routing import MatcherError, parse_matcher
from webhook.serialize import alert_json, delivery_json, maintenance_json
from webhook.store import ConflictError, NotFoundError, WebhookStore
from webhook.timebounds import BoundedDatetime

log = get_logger("tensafe_ops.webhook")
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_STORE_ERRORS = (SQLAlchemyError, sqlite3.Error, OSError, TimeoutError)


@dataclass
class Webhook:
    """Everything the handlers need, stored on the app under WEBHOOK_KEY."""

    cfg: WebhookConfig
    store: WebhookStore
    journal: Journal
    stats: WebhookStats
    clock: Clock
    writes: set[asyncio.Task[Any]] = field(default_factory=set)
    receiving: int = 0
    """Notifications between their body and their answer (the ingester yields to them)."""

    async def shielded(self, work: Coroutine[Any, Any, T]) -> T:
        """Every store call of a handler: waited for at most `store_timeout` (TimeoutError,
        answered 503), run to completion in a task of its own even if the client disconnects
        or the database hangs (see `tensafe_ops.storage.within`); shutdown waits for it."""
        return await within(work, self.cfg.store_timeout, self.writes)


WEBHOOK_KEY = web.AppKey("webhook", Webhook)


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _unauthorized(webhook: Webhook) -> web.Response:
    webhook.stats.rejected["unauthorized"] += 1
    response = error(401, "missing or wrong credentials")
    response.headers["WWW-Authenticate"] = 'Bearer realm="tensafe-ops", Basic realm="tensafe-ops"'
    return response


def _unavailable(webhook: Webhook, exc: BaseException) -> web.Response:
    webhook.stats.rejected["unavailable"] += 1
    log.error("store_unavailable", error=type(exc).__name__)
    return error(503, "state store unavailable, retry later")


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit` bytes (checked while streaming, after
    decompression: aiohttp decodes `Content-Encoding: gzip`/`deflate` as it reads)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(webhook: Webhook, request: web.Request) -> bytes | web.Response:
    """The body, or the answer to give instead: 413 past `body_limit_bytes`, 400 when it is
    not in the Content-Encoding it claims (corrupt gzip: Alertmanager retries 5xx forever)."""
    limit = webhook.cfg.body_limit_bytes
    try:
        body = await read_limited(request, limit)
    except web.RequestPayloadError as exc:
        webhook.stats.rejected["bad_request"] += 1
        return undecodable(request, exc)
    if body is None:
        webhook.stats.rejected["too_large"] += 1
        return error(413, f"body larger than {limit} bytes")
    return body


def receiver(auth: Auth) -> Handler:
    """POST handler for one receiver path with its own credentials."""

    async def receive(request: web.Request) -> web.Response:
        webhook = request.app[WEBHOOK_KEY]
        webhook.receiving += 1
        try:
            return await _receive(webhook, auth, request)
        finally:
            webhook.receiving -= 1

    return receive


def _journal_full(webhook: Webhook, size: int) -> web.Response | None:
    """503 when `size` more bytes would take the bodies waiting for the journal past the
    budget: a slow or hung database must not make the process hold them without bound."""
    waiting = webhook.journal.waiting_bytes
    if waiting + size <= webhook.cfg.journal_budget_bytes:
        return None
    webhook.stats.rejected["journal_full"] += 1
    log.warning("journal_full", waiting_bytes=waiting, budget=webhook.cfg.journal_budget_bytes)
    return error(503, "state store too slow: notifications waiting for it, retry later")


@dataclass(frozen=True)
class _Received:
    """A validated notification's text and what the answer and the log need of it: the
    handler keeps nothing bigger while it waits for the journal (the body, the parsed alerts),
    so a slow database holds one copy of each waiting notification."""

    text: str
    alerts: int
    receiver: str
    group_key: str


async def _read_notification(webhook: Webhook, request: web.Request) -> _Received | web.Response:
    """The validated notification, or the answer to give instead."""
    body = await read_body(webhook, request)
    if isinstance(body, web.Response):
        if body.status == 413:  # Alertmanager drops it: nobody would know but from here
            log.error(
                "notification_too_large",
                receiver_path=request.path,
                content_length=request.content_length,
                body_limit_bytes=webhook.cfg.body_limit_bytes,
                hint="Alertmanager drops it: lower the receiver's max_alerts",
            )
        return body
    try:
        notification = parse_notification(body)
        text = body.decode()  # the parser accepts UTF-8 only; this never fails after it
    except (PayloadError, UnicodeDecodeError) as exc:
        webhook.stats.rejected["bad_request"] += 1
        field, detail = (
            (exc.field, exc.message) if isinstance(exc, PayloadError) else ("<body>", "not UTF-8")
        )
        return error(400, "invalid Alertmanager payload", field=field, detail=detail)
    received = _Received(
        text, len(notification.alerts), notification.receiver, notification.group_key
    )
    return _journal_full(webhook, len(text)) or received


async def _receive(webhook: Webhook, auth: Auth, request: web.Request) -> web.Response:
    if not authorized(auth, request.headers.get("Authorization")):
        return _unauthorized(webhook)
    # Before the body is read: its length when sent, else whether any room is left at all.
    full = _journal_full(webhook, request.content_length or 1)
    if full is not None:
        return full
    received = await _read_notification(webhook, request)
    if isinstance(received, web.Response):
        return received
    try:
        # Not shielded: the journal's commit task owns the write, a cancelled handler
        # (client gone) only stops waiting for it. The journal fails it after store_timeout.
        journal_id = await webhook.journal.append(received.text, webhook.clock())
    except _STORE_ERRORS as exc:
        return _unavailable(webhook, exc)
    webhook.stats.accepted += 1
    if debug_logging():  # per notification: debug (the ingest logs each batch at info)
        log.debug(
            "notification_accepted",
            receiver=received.receiver,
            group_key=received.group_key,
            alerts=received.alerts,
            journal_id=journal_id,
        )
    return web.json_response({"status": "accepted", "alerts": received.alerts, "id": journal_id})


def api(handler: Handler) -> Handler:
    """Management endpoints: `api_auth` first (GET also accepts the read-only credentials
    under API_READ_AUTH_KEY, writes with them are 403); unknown ids as 404, state conflicts as
    409, store trouble as 503."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        webhook = request.app[WEBHOOK_KEY]
        assert webhook.cfg.api_auth is not None  # the config requires it when enabled
        header = request.headers.get("Authorization")
        if not authorized(webhook.cfg.api_auth, header):
            read_only = request.app.get(API_READ_AUTH_KEY)
            if read_only is None or not authorized(read_only, header):
                return _unauthorized(webhook)
            if request.method not in ("GET", "HEAD"):
                return error(403, "these credentials may only read")
        try:
            return await handler(request)
        except NotFoundError as exc:
            return error(404, str(exc))
        except ConflictError as exc:
            return error(409, str(exc))
        except _STORE_ERRORS as exc:
            return _unavailable(webhook, exc)

    return guarded


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValueError("NUL characters are not allowed")  # PostgreSQL cannot store them
        return value


class AckBody(_Body):
    by: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)


class MaintenanceBody(_Body):
    start: BoundedDatetime
    end: BoundedDatetime
    matchers: list[Annotated[str, Field(max_length=1000)]] = Field(min_length=1, max_length=50)
    reason: str = Field(min_length=1, max_length=500)
    by: str = Field(default="api", max_length=200)


def _parse_body(model: type[_Body], body: bytes) -> _Body | web.Response:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "<body>"
        return error(400, "invalid request body", field=where, detail=first["msg"])


def _int_param(request: web.Request, name: str) -> int | None:
    """A positive id from the path, or None (answered 404: no such thing)."""
    return parse_id(request.match_info[name])


def _limit(request: web.Request) -> int | web.Response:
    text = request.query.get("limit", "100")
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 1000:
        return error(400, "limit must be an integer from 1 to 1000", field="limit")
    return int(text)


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | web.Response | None:
    value = request.query.get(name)
    if value is None or value in allowed:
        return value
    return error(400, f"{name} must be one of {', '.join(allowed)}", field=name)


def _page(request: web.Request) -> Page | web.Response:
    try:
        return parse_page(request.query)
    except PageError as exc:
        return error(400, exc.message, field=exc.field)


def _paged(
    request: web.Request,
    key: str,
    rows: list[dict[str, Any]],
    page: Page,
    shown: list[dict[str, Any]],
) -> web.Response:
    """One page (`webhook.paging`): the rows, and `next` (body and Link header) when more
    follow; `rows` were fetched with `limit + 1`."""
    link = next_url(request.rel_url, rows, page)
    response = web.json_response({key: shown, "next": link})
    if link is not None:
        response.headers["Link"] = f'<{link}>; rel="next"'
    return response


async def list_alerts(request: web.Request) -> web.Response:
    webhook = request.app[WEBHOOK_KEY]
    state = _choice(request, "state", ("firing", "resolved", "stale"))
    severity = _choice(request, "severity", ("critical", "warning", "info"))
    page = _page(request)
    for parsed in (state, severity, page):
        if isinstance(parsed, web.Response):
            return parsed
    assert not isinstance(state, web.Response) and not isinstance(severity, web.Response)
    assert isinstance(page, Page)
    rows = await webhook.shielded(
        webhook.store.list_alerts(
            state,
            severity,
            page.limit + 1,
            before=page.before,
            since=page.since,
            until=page.until,
        )
    )
    now = webhook.clock()
    shown = [alert_json(r, now) for r in rows[: page.limit]]
    return _paged(request, "alerts", rows, page, shown)


async def acknowledge(request: web.Request) -> web.Response:
    webhook = request.app[WEBHOOK_KEY]
    alert_id = _int_param(request, "id")
    if alert_id is None:
        return error(404, "no such alert")
    raw = await read_body(webhook, request)
    if isinstance(raw, web.Response):
        return raw
    body = _parse_body(AckBody, raw)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, AckBody)
    now = webhook.clock()
    ack = await webhook.shielded(
        webhook.store.acknowledge(alert_id, body.by, body.note, "api", now)
    )
    webhook.stats.record_ack(ack.severity, ack.seconds_to_ack)
    if ack.breached_now:
        webhook.stats.breaches[ack.severity] += 1
    row = await webhook.shielded(webhook.store.get_alert(alert_id))
    return web.json_response(alert_json(row, now))


async def add_maintenance(request: web.Request) -> web.Response:
    webhook = request.app[WEBHOOK_KEY]
    raw = await read_body(webhook, request)
    if isinstance(raw, web.Response):
        return raw
    body = _parse_body(MaintenanceBody, raw)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, MaintenanceBody)
    if body.end <= body.start:
        return error(400, "end must be after start", field="end")
    for index, text in enumerate(body.matchers):
        try:
            parse_matcher(text)
        except MatcherError as exc:
            return error(400, str(exc), field=f"matchers.{index}")
    row = await webhook.shielded(
        webhook.store.add_maintenance(
            body.start, body.end, body.matchers, body.reason, body.by, webhook.clock()
        )
    )
    return web.json_response(maintenance_json(row), status=201)


async def end_maintenance(request: web.Request) -> web.Response:
    """End a window now (409 if it has not started or has ended already)."""
    webhook = request.app[WEBHOOK_KEY]
    window_id = _int_param(request, "id")
    if window_id is None:
        return error(404, "no such maintenance window")
    row = await webhook.shielded(webhook.store.end_maintenance(window_id, webhook.clock()))
    log.info("maintenance_ended", window=window_id)
    return web.json_response(maintenance_json(row))


async def delete_maintenance(request: web.Request) -> web.Response:
    webhook = request.app[WEBHOOK_KEY]
    window_id = _int_param(request, "id")
    if window_id is None:
        return error(404, "no such maintenance window")
    await webhook.shielded(webhook.store.delete_maintenance(window_id))
    log.info("maintenance_deleted", window=window_id)
    return web.Response(status=204)


async def list_maintenance(request: web.Request) -> web.Response:
    webhook = request.app[WEBHOOK_KEY]
    include_past = request.query.get("all", "").lower() in ("1", "true", "yes")
    rows = await webhook.shielded(webhook.store.list_maintenance(webhook.clock(), include_past))
    return web.json_response({"windows": [maintenance_json(r) for r in rows]})


async def list_deliveries(request: web.Request) -> web.Response:
    webhook = request.app[WEBHOOK_KEY]
    state = _choice(request, "state", ("pending", "sending", "sent", "dead"))
    page = _page(request)
    if isinstance(state, web.Response):
        return state
    if isinstance(page, web.Response):
        return page
    rows = await webhook.shielded(
        webhook.store.list_deliveries(
            state, page.limit + 1, before=page.before, since=page.since, until=page.until
        )
    )
    shown = [delivery_json(r) for r in rows[: page.limit]]
    return _paged(request, "deliveries", rows, page, shown)


async def retry_delivery(request: web.Request) -> web.Response:
    webhook = request.app[WEBHOOK_KEY]
    delivery_id = _int_param(request, "id")
    if delivery_id is None:
        return error(404, "no such delivery")
    row = await webhook.shielded(webhook.store.retry_delivery(delivery_id, webhook.clock()))
    return web.json_response(delivery_json(row))


async def list_failed_notifications(request: web.Request) -> web.Response:
    """Journal entries set aside as failed, with the error, the body as received included."""
    webhook = request.app[WEBHOOK_KEY]
    limit = _limit(request)
    if isinstance(limit, web.Response):
        return limit
    failed = await webhook.shielded(webhook.journal.failed(limit))
    return web.json_response(
        {
            "notifications": [
                {
                    "id": entry.id,
                    "received_at": entry.received_at.isoformat().replace("+00:00", "Z"),
                    "attempts": entry.attempts,
                    "last_error": error,
                    "body": entry.body,
                }
                for entry, error in failed
            ]
        }
    )


async def retry_notification(request: web.Request) -> web.Response:
    webhook = request.app[WEBHOOK_KEY]
    entry_id = _int_param(request, "id")
    if entry_id is None or not await webhook.shielded(webhook.journal.retry(entry_id)):
        return error(404, "no failed notification with that id")
    webhook.journal.appended.set()  # the ingester picks it up now
    return web.json_response({"id": entry_id, "state": "pending"})


class _Agent(BaseModel):
    model_config = ConfigDict(extra="allow")
    summary: str | None = None


class _IncidentData(BaseModel):
    model_config = ConfigDict(extra="allow")
    incident_key: str | None = None


class _PagerDutyEvent(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    event_type: str
    occurred_at: BoundedDatetime | None = None
    agent: _Agent | None = None
    data: _IncidentData = Field(default_factory=_IncidentData)


class PagerDutyWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")
    event: _PagerDutyEvent


def delivery_hash(webhook_id: str | None, event_id: str | None) -> str | None:
    """What deduplicates a PagerDuty delivery: its X-Webhook-Id (the same on every retry),
    else the event's id, as a SHA-256 hex digest so that any length fits the column. None:
    neither was sent (the occurrence check still stops a replay acking a later firing)."""
    identity = webhook_id or (f"event:{event_id}" if event_id else None)
    if identity is None:
        return None
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()


ACK_EVENTS: tuple[Literal["incident.acknowledged", "incident.resolved"], ...] = (
    "incident.acknowledged",
    "incident.resolved",
)


async def pagerduty_webhook(request: web.Request) -> web.Response:
    """PagerDuty webhooks v3: an acknowledged or resolved incident answers its alert."""
    webhook = request.app[WEBHOOK_KEY]
    body = await read_body(webhook, request)
    if isinstance(body, web.Response):
        return body
    signature = request.headers.get("X-PagerDuty-Signature")
    if not pagerduty_signature_valid(body, signature, webhook.cfg.pagerduty_webhook_secrets):
        webhook.stats.rejected["bad_signature"] += 1
        return error(401, "missing or invalid X-PagerDuty-Signature")
    try:
        event = PagerDutyWebhook.model_validate_json(body).event
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "<body>"
        return error(400, "invalid PagerDuty webhook", field=where, detail=first["msg"])
    key = (event.data.incident_key or "").replace("\x00", "")
    if event.event_type not in ACK_EVENTS or not key:
        webhook.stats.pagerduty_webhooks["ignored"] += 1
        return web.json_response({"status": "ignored"})
    now = webhook.clock()
    at = event.occurred_at or now
    agent = ((event.agent.summary if event.agent else None) or "pagerduty").replace("\x00", "")
    agent = agent[:200]
    delivery = delivery_hash(request.headers.get("X-Webhook-Id"), event.id)
    try:
        outcome, ack = await webhook.shielded(
            webhook.store.pagerduty_event(delivery, event.event_type, key, agent, at, now)
        )
    except _STORE_ERRORS as exc:
        return _unavailable(webhook, exc)
    webhook.stats.pagerduty_webhooks[outcome] += 1
    if ack is not None:
        webhook.stats.record_ack(ack.severity, ack.seconds_to_ack)
        if ack.breached_now:
            webhook.stats.breaches[ack.severity] += 1
    return web.json_response({"status": outcome})


def add_routes(app: web.Application, cfg: WebhookConfig) -> None:
    for path, receiver_cfg in cfg.receivers.items():
        app.router.add_post(path, receiver(receiver_cfg.auth))
    app.router.add_get("/api/v1/alerts", api(list_alerts))
    app.router.add_post("/api/v1/alerts/{id}/ack", api(acknowledge))
    app.router.add_get("/api/v1/maintenance", api(list_maintenance))
    app.router.add_post("/api/v1/maintenance", api(add_maintenance))
    app.router.add_delete("/api/v1/maintenance/{id}", api(delete_maintenance))
    app.router.add_post("/api/v1/maintenance/{id}/end", api(end_maintenance))
    app.router.add_get("/api/v1/deliveries", api(list_deliveries))
    app.router.add_post("/api/v1/deliveries/{id}/retry", api(retry_delivery))
    app.router.add_get("/api/v1/notifications/failed", api(list_failed_notifications))
    app.router.add_post("/api/v1/notifications/{id}/retry", api(retry_notification))
    if cfg.pagerduty_webhook_secrets:
        app.router.add_post("/api/v1/pagerduty/webhook", pagerduty_webhook)
