"""The operator part: the daily operations checklist as a JSON API, and the daily record.

It reads the exporter's snapshots and the webhook's store through the narrow interfaces of
`operations.ports` (the app factory wires them) and Prometheus over HTTP; it never imports the
exporter or the webhook. `setup` adds the routes, an HTTP session for Prometheus and the
recorder loop (morning numbers, the nightly record, retention), all in `cleanup_ctx`.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from sqlalchemy.exc import DBAPIError

from operations import pages
from operations.config import OperatorConfig
from operations.handlers import OPERATIONS_KEY, add_routes
from operations.pages import PAGES_KEY
from operations.ports import ALERT_BOOK_KEY, EXPORTER_VIEW_KEY
from operations.service import Operations
from operations.store import OperatorStore
from tensafe_ops.auth import Auth
from tensafe_ops.keys import CLOCK_KEY, STATE_STORE_KEY
from tensafe_ops.log import get_logger
from tensafe_ops.storage import describe_error

log = get_logger("tensafe_ops.operations")

__all__ = [
    "ALERT_BOOK_KEY",
    "EXPORTER_VIEW_KEY",
    "OPERATIONS_KEY",
    "PAGES_KEY",
    "OperatorConfig",
    "setup",
]


def setup(app: web.Application, cfg: OperatorConfig, api_auth: Auth | None) -> None:
    """Call after the exporter and webhook are set up and their views wired (the app factory
    does); `api_auth` are the management API's credentials (the webhook's `api_auth`)."""
    if not cfg.enabled:
        return
    if api_auth is None:
        raise ValueError("the operator API needs api_auth (credentials or `none`)")
    ops = Operations(
        cfg=cfg,
        store=OperatorStore(app[STATE_STORE_KEY].engine, cfg.store_timeout),
        clock=app[CLOCK_KEY],
        api_auth=api_auth,
        exporter=app.get(EXPORTER_VIEW_KEY),
        alerts=app.get(ALERT_BOOK_KEY),
    )
    app[OPERATIONS_KEY] = ops
    add_routes(app)
    pages.setup(app, cfg.pages)
    app.cleanup_ctx.append(_session)
    app.cleanup_ctx.append(_recorder)


async def _session(app: web.Application) -> AsyncIterator[None]:
    ops = app[OPERATIONS_KEY]
    ops.session = aiohttp.ClientSession()
    ops.started_at = ops.clock()
    yield
    await ops.session.close()
    if ops.store.pending:  # writes whose requests were answered 503: let them end
        await asyncio.wait(set(ops.store.pending), timeout=2 * ops.cfg.store_timeout)


async def _record_forever(ops: Operations) -> None:
    while True:
        try:
            await ops.record_due(ops.clock())
        except (TimeoutError, OSError, DBAPIError, aiohttp.ClientError) as exc:
            # The store or Prometheus is away: one line per pass (every
            # record_check_interval), not a traceback each time; the next pass retries.
            ops.recorder_errors += 1
            log.warning("daily_record_failed", error=describe_error(exc))
        except Exception:  # a bug: its traceback, once per pass
            ops.recorder_errors += 1
            log.exception("daily_record_failed")
        await asyncio.sleep(ops.cfg.record_check_interval)


async def _recorder(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_record_forever(app[OPERATIONS_KEY]), name="operator-recorder")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
