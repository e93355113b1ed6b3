"""The exporter half: background source refreshes served as pre-rendered /metrics."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from exporter.config import ExporterConfig
from exporter.runner import Runner

# Aliased: a bare `health` here would shadow the scoring module `exporter.health`.
from exporter.sources import health as health_source
from exporter.sources import pagerduty as pagerduty_source
from exporter.sources import stripe as stripe_source
from exporter.sources import usage as usage_source
from exporter.sources import zendesk as zendesk_source
from exporter.sources.base import ScheduledSource, SourceContext
from exporter.stats import SelfCollector, UpstreamStats
from tensafe_ops.keys import (
    CLOCK_KEY,
    DEMO_KEY,
    EXPORTER_CLOCK_KEY,
    SELF_REGISTRY_KEY,
    STATE_STORE_KEY,
)
from tensafe_ops.metrics import PRERENDERED_KEY

RUNNER_KEY = web.AppKey("exporter_runner", Runner)


def setup(app: web.Application, cfg: ExporterConfig) -> None:
    stats = UpstreamStats(demo=app[DEMO_KEY])
    state = app[STATE_STORE_KEY]
    clock = app[EXPORTER_CLOCK_KEY]
    runner = Runner([], state, stats, clock, wall=app[CLOCK_KEY])
    context = SourceContext(state=state, stats=stats, clock=clock, facts=runner)
    runner.sources = build_sources(cfg, context)
    app[RUNNER_KEY] = runner
    app[SELF_REGISTRY_KEY].register(
        SelfCollector(stats, tuple(s.source.name for s in runner.sources))
    )
    app[PRERENDERED_KEY].append(runner.current)
    app.cleanup_ctx.append(_run_sources)


def build_sources(cfg: ExporterConfig, context: SourceContext) -> list[ScheduledSource]:
    """The enabled sources, each with its own schedule (health last: it joins the others)."""
    sources: list[ScheduledSource] = []
    if cfg.zendesk.enabled:
        sources.append(ScheduledSource(zendesk_source.create(cfg.zendesk, context), cfg.zendesk))
    if cfg.pagerduty.enabled:
        source = pagerduty_source.create(cfg.pagerduty, context)
        sources.append(ScheduledSource(source, cfg.pagerduty))
    if cfg.stripe.enabled:
        sources.append(ScheduledSource(stripe_source.create(cfg.stripe, context), cfg.stripe))
    if cfg.usage.enabled:
        sources.append(ScheduledSource(usage_source.create(cfg.usage, context), cfg.usage))
    if cfg.health.enabled:
        enabled = [s.source.name for s in sources]  # health waits for each one's first sync
        health = health_source.create(cfg.health, context, enabled)
        sources.append(ScheduledSource(health, cfg.health))
    return sources


async def _run_sources(app: web.Application) -> AsyncIterator[None]:
    runner = app[RUNNER_KEY]
    await runner.restore()
    tasks = [
        asyncio.create_task(runner.run_forever(s), name=f"source:{s.source.name}")
        for s in runner.sources
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for scheduled in runner.sources:
        await scheduled.source.aclose()
