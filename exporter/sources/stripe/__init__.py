"""Stripe source: MRR and billing metrics from a full sync, then the Events API.

The first refresh lists subscriptions (status=all, discounts expanded at both levels),
customers, open invoices and the last 24h of events; later refreshes only fetch the events
newer than the last one seen (usually one request) and apply the changed objects. Everything
is persisted, so a restart continues from the last event. A full resync runs every
`full_resync_interval`, or when the event cursor is older than Stripe's 30-day retention.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from exporter.config import StripeConfig
from exporter.movements import Movements, movements, paying
from exporter.mrr import MrrSummary
from exporter.sources.base import SourceContext, SourceResult, off_loop
from exporter.sources.stripe.api import SOURCE, StripeApi
from exporter.sources.stripe.report import build_report, mrr_summary
from exporter.sources.stripe.sync import NS_META, StripeSync
from tensafe_ops.log import get_logger
from tensafe_ops.storage import StateStore

log = get_logger("tensafe_ops.exporter.stripe")


def next_day(
    stored: Mapping[str, Any] | None, current: dict[str, float], today: str
) -> tuple[dict[str, Any], Movements]:
    """The day record after a refresh that measured `current`, and the day's movements so far.
    Builds a new record: `stored` is left as it is."""
    day: Mapping[str, Any]
    if stored is None:  # the very first run: nothing is known from before it
        first = sorted(paying(current))
        day = {"day": today, "baseline": current, "paid_before": first, "seen_paying": first}
    elif stored["day"] != today:
        seen = sorted(set(stored["seen_paying"]) | paying(stored["last"]))
        day = {"day": today, "baseline": stored["last"], "paid_before": seen, "seen_paying": seen}
    else:
        day = stored
    seen_paying = sorted(set(day["seen_paying"]) | paying(current))
    record = {**day, "last": current, "seen_paying": seen_paying}
    return record, movements(record["baseline"], current, record["paid_before"])


class DayBaseline:
    """Per-customer MRR at the start of the UTC day, persisted under stripe.meta/day.

    At the first refresh of a new UTC day, the MRR map of the last refresh before midnight
    becomes the baseline, and everyone who paid up to then joins `paid_before` (which makes a
    returning customer a reactivation rather than new business).
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.record: dict[str, Any] | None = None
        """The record as persisted. Never changed in place: each refresh builds a new one."""

    async def movements(self, current: dict[str, float], now: datetime) -> Movements:
        if self.record is None:
            self.record = await self.store.get(NS_META, "day")
        # Set arithmetic over 10,000 customers, in a worker thread: it reads the record (never
        # changed in place) and `current` (this refresh's own copy), and builds a new record.
        record, moves = await off_loop(next_day, self.record, current, now.date().isoformat())
        if record != self.record:  # most refreshes change nothing: skip the write
            await self.store.put(NS_META, "day", record)
            self.record = record
        return moves


class StripeSource:
    name = SOURCE

    def __init__(self, cfg: StripeConfig, context: SourceContext) -> None:
        self.cfg = cfg
        self.context = context
        self.api = StripeApi(cfg, context.stats)
        self.sync = StripeSync(cfg, self.api, context.state, context.stats)
        self.day = DayBaseline(context.state)
        self.unresolved_logged: set[str] = set()

    async def refresh(self, now: datetime) -> SourceResult:
        state = await self.sync.refresh(now)
        # MRR and the report (a few hundred ms over 10,000 subscriptions) run in worker threads,
        # on a copy of the state's dicts: the next sync changes those dicts, not the objects.
        billing = state.copy()
        summary = await off_loop(mrr_summary, billing, now, self.cfg)
        self._log_unresolved(summary)
        moves = await self.day.movements(dict(summary.by_customer), now)
        report = await off_loop(build_report, billing, summary, moves, now, self.cfg)
        return SourceResult(report.families, report.facts, overview=report.overview)

    def _log_unresolved(self, summary: MrrSummary) -> None:
        """Once per discount id: a discount that could not be read (its subscription counts
        before it; tensafe_stripe_unresolved_discounts says how many there are)."""
        for mrr in summary.subscriptions:
            for discount in mrr.unresolved_discounts:
                if discount not in self.unresolved_logged:
                    self.unresolved_logged.add(discount)
                    log.warning(
                        "stripe_discount_unresolved",
                        discount=discount,
                        subscription=mrr.subscription,
                        customer=mrr.customer,
                    )

    async def aclose(self) -> None:
        await self.api.aclose()


def create(cfg: StripeConfig, context: SourceContext) -> StripeSource:
    return StripeSource(cfg, context)


__all__ = ["DayBaseline", "StripeSource", "create", "next_day"]
