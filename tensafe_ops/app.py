"""The app factory: one aiohttp application with the exporter and/or webhook halves
(`server.role`), the health endpoints and the self-metrics."""

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

import exporter
import operations
import webhook
from tensafe_ops import __version__, metrics
from tensafe_ops.bodies import undecodable_bodies
from tensafe_ops.clock import Clock, utcnow
from tensafe_ops.keys import (
    API_READ_AUTH_KEY,
    CLOCK_KEY,
    DEMO_KEY,
    EXPORTER_CLOCK_KEY,
    STATE_STORE_KEY,
)
from tensafe_ops.settings import Settings
from tensafe_ops.storage import StateStore, create_engine, migrate, within
from webhook.reader import WebhookReader

SETTINGS_KEY = web.AppKey("settings", Settings)
READY_TIMEOUT = 2.0
READY_PINGS_KEY: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("ready_pings")
"""/readyz pings still running after their answer (a slow or hung state database)."""


async def _state_db(app: web.Application) -> AsyncIterator[None]:
    store = app[STATE_STORE_KEY]
    await migrate(store.engine)
    yield
    # A ping nobody waits for any more is cancelled, not left pending on a closed loop.
    pings = app[READY_PINGS_KEY].copy()
    for ping in pings:
        ping.cancel()
    if pings:
        await asyncio.wait(pings, timeout=READY_TIMEOUT)
    await store.engine.dispose()


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    try:
        await within(app[STATE_STORE_KEY].ping(), READY_TIMEOUT, app[READY_PINGS_KEY])
    except Exception as exc:  # any failure means not ready; say which
        return web.json_response(
            {"status": "unavailable", "state_db": type(exc).__name__}, status=503
        )
    return web.json_response({"status": "ready", "state_db": "ok", "config": "loaded"})


async def index(request: web.Request) -> web.Response:
    demo = " (demo: simulated data)" if request.app[DEMO_KEY] else ""
    paths = ["/metrics", "/healthz", "/readyz"]
    if operations.PAGES_KEY in request.app:
        paths = ["/status", "/customers", "/checklist", *paths]
    links = "".join(f"<li><a href='{path}'>{path}</a></li>" for path in paths)
    body = (
        f"<html><head><title>tensafe-ops</title></head><body><h1>tensafe-ops {__version__}{demo}"
        f"</h1><ul>{links}</ul></body></html>"
    )
    return web.Response(text=body, content_type="text/html")


def make_app(
    settings: Settings, *, clock: Clock = utcnow, exporter_clock: Clock | None = None
) -> web.Application:
    """The application. `exporter_clock` (default: `clock`) is what business values are
    measured with; a demo passes its world's clock there, the rest stays on `clock`."""
    app = web.Application(client_max_size=1024**2, middlewares=[undecodable_bodies])
    app[SETTINGS_KEY] = settings
    app[CLOCK_KEY] = clock
    app[EXPORTER_CLOCK_KEY] = exporter_clock or clock
    app[DEMO_KEY] = settings.demo
    app[STATE_STORE_KEY] = StateStore(create_engine(settings.server.db_url()))
    app[READY_PINGS_KEY] = set()
    if settings.operator.read_auth is not None:
        app[API_READ_AUTH_KEY] = settings.operator.read_auth
    app.cleanup_ctx.append(_state_db)
    metrics.setup(app, settings.server.role)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if settings.runs_exporter():
        exporter.setup(app, settings.exporter)
    if settings.runs_webhook():
        webhook.setup(app, settings.webhook)
    _wire_operator_views(app, settings.operator.store_timeout)
    operations.setup(
        app, settings.operator, settings.operator.api_auth or settings.webhook.api_auth
    )
    return app


def _wire_operator_views(app: web.Application, store_timeout: float) -> None:
    """The operator part reads the two halves through narrow interfaces (operations.ports);
    its reads of the webhook's store wait at most the operator's `store_timeout`."""
    if exporter.RUNNER_KEY in app:
        app[operations.EXPORTER_VIEW_KEY] = app[exporter.RUNNER_KEY]
    if webhook.WEBHOOK_KEY in app:
        app[operations.ALERT_BOOK_KEY] = WebhookReader(app[webhook.WEBHOOK_KEY], store_timeout)
