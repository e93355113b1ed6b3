"""The webhook half: Alertmanager notifications in, routed deliveries out.

`setup` adds the routes, the ingest loop from `webhook.ingest` (journaled notifications into
alerts and outbox rows), the sweep loop (stale alerts, SLA breaches, gauges), the Slack digest
loop from `webhook.digester` and the dispatcher from `webhook.dispatch`, all living in
`cleanup_ctx`: started with the app, stopped and awaited on shutdown, after in-flight writes
have finished.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from tensafe_ops.keys import CLOCK_KEY, SELF_REGISTRY_KEY, STATE_STORE_KEY
from tensafe_ops.log import get_logger
from webhook.config import WebhookConfig
from webhook.digest_store import DigestStore
from webhook.digester import DigestCollector, setup_digester
from webhook.dispatch import Dispatcher, WakeUp, setup_dispatcher
from webhook.handlers import WEBHOOK_KEY, Webhook, add_routes
from webhook.ingest import Ingester, ingester_ctx
from webhook.intake import Policy
from webhook.journal import open_journal
from webhook.metrics import WebhookCollector, WebhookStats
from webhook.owners import open_owners
from webhook.store import WebhookStore

__all__ = ["DISPATCHER_KEY", "INGESTER_KEY", "WEBHOOK_KEY", "setup"]

log = get_logger("tensafe_ops.webhook")
INGESTER_KEY = web.AppKey("webhook_ingester", Ingester)
DISPATCHER_KEY = web.AppKey("webhook_dispatcher", Dispatcher)


def setup(app: web.Application, cfg: WebhookConfig) -> None:
    if not cfg.enabled:
        return
    store = WebhookStore(app[STATE_STORE_KEY].engine, Policy.from_config(cfg))
    journal = open_journal(store.engine, store.writing, cfg.store_timeout)
    webhook = Webhook(
        cfg=cfg, store=store, journal=journal, stats=WebhookStats(), clock=app[CLOCK_KEY]
    )
    app[WEBHOOK_KEY] = webhook
    add_routes(app, cfg)
    app.cleanup_ctx.append(_sweeper)
    ingester = Ingester(
        store, journal, webhook.stats, cfg.ingest, app[CLOCK_KEY], lambda: webhook.receiving
    )
    app[INGESTER_KEY] = ingester
    app.cleanup_ctx.append(ingester_ctx(ingester))
    digest_stats = setup_digester(
        app, DigestStore(store), cfg.digest, cfg.destinations.slack, app[CLOCK_KEY]
    )
    wake_up = WakeUp()
    ingester.on_ingested = wake_up.notify
    owners = open_owners(store.engine, wake_up.notify)
    dispatcher = setup_dispatcher(
        app, store, cfg.destinations, cfg.dispatch, app[CLOCK_KEY], wake_up, owners
    )
    app[DISPATCHER_KEY] = dispatcher
    app[SELF_REGISTRY_KEY].register(WebhookCollector(webhook.stats, dispatcher.stats, owners.owned))
    app[SELF_REGISTRY_KEY].register(DigestCollector(digest_stats))


async def sweep_once(webhook: Webhook) -> None:
    """Close stale alerts, count SLA breaches, prune old state, refresh the store gauges."""
    now = webhook.clock()
    staleness = await webhook.store.staleness(webhook.cfg.stale_after, webhook.cfg.stale_default)
    result = await webhook.store.sweep(now, staleness)
    for severity in result.stale:
        webhook.stats.stale_closed[severity] += 1
    for severity in result.breaches:
        webhook.stats.breaches[severity] += 1
    if result.stale:
        log.warning("stale_alerts_closed", count=len(result.stale), staleness=staleness)
    pruned = await webhook.store.prune(now, webhook.cfg.retention)
    if pruned.alerts or pruned.deliveries:
        log.info("webhook_state_pruned", alerts=pruned.alerts, deliveries=pruned.deliveries)
    webhook.stats.gauges = await webhook.store.gauges(now)
    webhook.stats.backlog = await webhook.journal.backlog(now)


async def _sweep_forever(webhook: Webhook) -> None:
    while True:
        try:
            await sweep_once(webhook)
        except Exception:  # the store may be briefly unavailable; the next round retries
            log.exception("sweep_failed")
        await asyncio.sleep(webhook.cfg.sweep_interval)


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    webhook = app[WEBHOOK_KEY]
    task = asyncio.create_task(_sweep_forever(webhook), name="webhook-sweep")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # Accepted-but-unanswered writes (client gone) still finish before the engine closes,
    # unless the database does not answer at all.
    if webhook.writes:
        await asyncio.wait(set(webhook.writes), timeout=2 * webhook.cfg.store_timeout)
    await webhook.journal.close()
