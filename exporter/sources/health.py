"""Customer health: joins the other sources' per-account facts and scores every account.

It calls no upstream. The first computation waits until every enabled input source
(zendesk, stripe, usage) has completed one sync, i.e. has facts — from this run, or persisted
by the last one and restored at startup. Stripe and usage are needed in any case (without them
nearly every score would be a meaningless 100). While it waits, a refresh exports only
`tensafe_health_inputs_available{source}` (0 for what is missing) and the configured band
bounds `tensafe_health_band_below{band}` (config, known from the start), no score, band count
or signal, and checks again every `WAIT_RECHECK` seconds instead of its interval. A score is
never built on missing inputs: today Zendesk's first sync takes longer than Stripe's, and scores
made in between would show no ticket signal for anyone.
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.config import HealthConfig
from exporter.health import BANDS, SIGNALS, Health, score_accounts
from exporter.snapshot import CACHED_NOTE
from exporter.sources.base import SourceContext, SourceResult, off_loop
from tensafe_ops.log import get_logger

log = get_logger("tensafe_ops.exporter.health")

INPUTS = ("zendesk", "stripe", "usage")
REQUIRED_INPUTS = ("stripe", "usage")
WAIT_RECHECK = 2.0
"""Seconds between looks for the missing inputs while health waits for them."""


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc + CACHED_NOTE, labels=labels or [])


def _is_enterprise(stripe: Mapping[str, Any] | None) -> bool:
    return bool(stripe and stripe.get("enterprise"))


def availability(inputs: Mapping[str, Mapping[str, Any] | None]) -> GaugeMetricFamily:
    available = _gauge(
        "tensafe_health_inputs_available",
        "1 if the source's per-account facts are part of the health join; health computes "
        "nothing until every enabled input has them.",
        ["source"],
    )
    for source in INPUTS:
        available.add_metric([source], 0.0 if inputs.get(source) is None else 1.0)
    return available


def band_bounds(cfg: HealthConfig) -> GaugeMetricFamily:
    """The configured bounds, for rules that must agree with the exporter on "at risk"."""
    below = _gauge(
        "tensafe_health_band_below",
        "The configured score below which a customer is in the band (exporter.health.*_below).",
        ["band"],
    )
    below.add_metric(["at_risk"], float(cfg.at_risk_below))
    below.add_metric(["watch"], float(cfg.watch_below))
    return below


def health_families(
    scores: Mapping[str, Health],
    inputs: Mapping[str, Mapping[str, Any] | None],
    cfg: HealthConfig,
) -> list[Metric]:
    """Metric families for the given scores (every band and signal is always present)."""
    stripe = inputs.get("stripe") or {}
    usage = inputs.get("usage") or {}

    available = availability(inputs)
    bounds = band_bounds(cfg)

    bands = Counter(h.band for h in scores.values())
    by_band = _gauge("tensafe_health_customers", "Customers per health band.", ["band"])
    for band in BANDS:
        by_band.add_metric([band], bands[band])

    at_risk = [h.account for h in scores.values() if h.band == "at_risk"]
    at_risk_customers = _gauge("tensafe_health_at_risk_customers", "Customers in the at_risk band.")
    at_risk_customers.add_metric([], len(at_risk))
    at_risk_mrr = _gauge(
        "tensafe_health_at_risk_mrr",
        "Sum of the Stripe MRR (reporting currency) of at_risk customers.",
    )
    at_risk_mrr.add_metric([], sum(float(stripe.get(a, {}).get("mrr") or 0.0) for a in at_risk))

    signals = Counter(p.signal for h in scores.values() for p in h.penalties)
    per_signal = _gauge(
        "tensafe_health_churn_signal_customers",
        "Customers whose score is lowered by the churn signal.",
        ["signal"],
    )
    for signal in SIGNALS:
        per_signal.add_metric([signal], signals[signal])

    per_customer = _gauge(
        "tensafe_health_score",
        "Health score 0-100 of enterprise customers (the lowest scores, up to the cap).",
        ["account", "tier"],
    )
    enterprise = sorted(
        (h for h in scores.values() if _is_enterprise(stripe.get(h.account))),
        key=lambda h: (h.score, h.account),
    )
    for health in enterprise[: cfg.per_customer_cap]:
        tier = str(usage.get(health.account, {}).get("tier") or "unknown")
        per_customer.add_metric([health.account, tier], health.score)
    omitted = _gauge(
        "tensafe_health_score_omitted_customers",
        "Enterprise customers left out of tensafe_health_score by per_customer_cap.",
    )
    omitted.add_metric([], max(0, len(enterprise) - cfg.per_customer_cap))
    return [
        available,
        bounds,
        by_band,
        at_risk_customers,
        at_risk_mrr,
        per_signal,
        per_customer,
        omitted,
    ]


def share_equal(scores: Mapping[str, Health]) -> dict[str, dict[str, Any]]:
    """Each account's `Health.to_json()`; accounts with the same score and penalties get one
    fact object (facts are read-only once built): 20,000 accounts have a few hundred."""
    shared: dict[tuple[Any, ...], dict[str, Any]] = {}
    facts: dict[str, dict[str, Any]] = {}
    for account, health in scores.items():
        key = (health.score, health.band, health.penalties)
        fact = shared.get(key)
        if fact is None:
            fact = shared[key] = health.to_json()
        facts[account] = fact
    return facts


def health_result(
    inputs: Mapping[str, Mapping[str, Any] | None], cfg: HealthConfig, now: datetime
) -> SourceResult:
    """Scores, families and facts from the other sources' facts (stripe and usage present)."""
    scores = score_accounts(
        zendesk=inputs["zendesk"],
        stripe=inputs["stripe"],
        usage=inputs["usage"],
        cfg=cfg,
        now=now,
    )
    bands = Counter(h.band for h in scores.values())
    overview = {
        "bands": {band: bands[band] for band in BANDS},
        "at_risk_below": cfg.at_risk_below,
        "watch_below": cfg.watch_below,
        "inputs": [source for source in INPUTS if inputs.get(source) is not None],
    }
    return SourceResult(
        health_families(scores, inputs, cfg), share_equal(scores), overview=overview
    )


class HealthSource:
    name = "health"

    def __init__(
        self, cfg: HealthConfig, context: SourceContext, enabled_inputs: Sequence[str] = INPUTS
    ) -> None:
        self.cfg = cfg
        self.context = context
        self.awaited = tuple(sorted(set(enabled_inputs) & set(INPUTS) | set(REQUIRED_INPUTS)))
        """The inputs a computation needs: the enabled ones, and stripe and usage always."""

    async def refresh(self, now: datetime) -> SourceResult:
        inputs = {source: self.context.facts.facts(source) for source in INPUTS}
        missing = [source for source in self.awaited if inputs[source] is None]
        if missing:
            log.info("health_waiting_for_inputs", missing=missing)
            return SourceResult(
                [availability(inputs), band_bounds(self.cfg)], refresh_again_in=WAIT_RECHECK
            )
        # Scoring 20,000 accounts takes ~0.2 s of CPU: in a worker thread. The inputs are the
        # other sources' snapshot facts, which are never changed once built (a refresh builds
        # new ones and the runner swaps whole snapshots), so the thread reads them safely.
        return await off_loop(health_result, inputs, self.cfg, now)

    async def aclose(self) -> None:
        return None


def create(
    cfg: HealthConfig, context: SourceContext, enabled_inputs: Sequence[str] = INPUTS
) -> HealthSource:
    return HealthSource(cfg, context, enabled_inputs)
