"""Turns the synced billing state into metric families and per-account facts (pure)."""

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.config import StripeConfig
from exporter.movements import Movements
from exporter.mrr import DiscountBook, MrrSummary, summarize
from exporter.snapshot import CACHED_NOTE
from exporter.sources.stripe.sync import BillingState

OTHER_PLAN = "other"


@dataclass
class Report:
    summary: MrrSummary
    families: list[Metric] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    overview: dict[str, Any] = field(default_factory=dict)
    """Totals for the operator API (the daily summary's business table)."""


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"tensafe_stripe_{name}", doc + CACHED_NOTE, labels=list(labels))


def cap_plans(by_plan: Mapping[str, float], limit: int) -> dict[str, float]:
    """The `limit` largest plans; the rest summed into plan="other"."""
    ranked = sorted(by_plan.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ranked[:limit])
    rest = sum(value for _, value in ranked[limit:])
    if len(ranked) > limit:
        kept[OTHER_PLAN] = kept.get(OTHER_PLAN, 0.0) + rest
    return kept


def mrr_summary(state: BillingState, now: datetime, cfg: StripeConfig) -> MrrSummary:
    book = DiscountBook(state.discounts, state.coupons)
    return summarize(state.subscriptions.values(), now, cfg.mrr, state.overdue_since(), book)


def build_report(
    state: BillingState,
    summary: MrrSummary,
    moves: Movements,
    now: datetime,
    cfg: StripeConfig,
) -> Report:
    """Every Stripe metric family (see docs/metrics.md) and the facts for the health join."""
    report = Report(summary)
    currency = summary.reporting_currency
    add = report.families.append

    mrr = _gauge("mrr", "Monthly recurring revenue per currency, major units.", ["currency"])
    for code, amount in sorted(summary.by_currency.items()):
        mrr.add_metric([code], amount)
    add(mrr)
    converted = _gauge(
        "mrr_converted",
        "MRR of every convertible currency, in the reporting currency.",
        ["currency"],
    )
    converted.add_metric([currency], summary.total)
    add(converted)
    unconverted = _gauge(
        "mrr_unconverted",
        "MRR in currencies without a configured rate (native units; not in any total).",
        ["currency"],
    )
    for code, amount in sorted(summary.unconverted.items()):
        unconverted.add_metric([code], amount)
    add(unconverted)
    by_plan = _gauge("mrr_by_plan", "MRR by product, in the reporting currency.", ["plan"])
    for plan, amount in sorted(cap_plans(summary.by_product, cfg.max_plans).items()):
        by_plan.add_metric([plan], amount)
    add(by_plan)
    movement = _gauge(
        "mrr_movement",
        "MRR moved since the start of the UTC day, by kind, in the reporting currency.",
        ["kind"],
    )
    for kind, amount in moves.as_dict().items():
        movement.add_metric([kind], amount)
    add(movement)
    scheduled = _gauge(
        "scheduled_churn_mrr", "MRR of subscriptions set to cancel at period end (still counted)."
    )
    scheduled.add_metric([], summary.scheduled_churn)
    add(scheduled)

    unresolved = _gauge(
        "unresolved_discounts",
        "Discounts that could not be read, so their subscriptions count before them.",
    )
    unresolved.add_metric([], len(summary.unresolved_discounts))
    add(unresolved)
    unresolved_mrr = _gauge(
        "unresolved_discount_mrr",
        "Converted MRR of subscriptions with an unreadable discount (counted undiscounted).",
    )
    unresolved_mrr.add_metric([], summary.unresolved_discount_mrr)
    add(unresolved_mrr)

    statuses = Counter(str(s.get("status")) for s in state.subscriptions.values())
    subscriptions = _gauge("subscriptions", "Subscriptions by status.", ["status"])
    for status, count in sorted(statuses.items()):
        subscriptions.add_metric([status], count)
    add(subscriptions)
    past_due = _gauge("past_due_subscriptions", "Subscriptions whose latest payment failed.")
    past_due.add_metric([], statuses.get("past_due", 0))
    add(past_due)

    paying = {m.customer for m in summary.subscriptions if m.amount > 0}
    enterprise = {
        c for c, amount in summary.by_customer.items() if amount >= cfg.enterprise_mrr_threshold
    }
    for name, doc, value in (
        ("paying_customers", "Customers with MRR above zero.", len(paying)),
        (
            "enterprise_customers",
            "Customers whose MRR reaches the enterprise threshold.",
            len(enterprise),
        ),
    ):
        family = _gauge(name, doc)
        family.add_metric([], value)
        add(family)
    recent = _add_recent(report, state, summary, now)
    report.facts = _facts(state, summary, cfg, report.families)
    report.overview = {
        "currency": currency,
        "mrr": summary.total,
        "unconverted": dict(summary.unconverted),
        "movements": moves.as_dict(),
        "mrr_change_today": moves.net,
        "scheduled_churn_mrr": summary.scheduled_churn,
        "past_due_subscriptions": statuses.get("past_due", 0),
        "paying_customers": len(paying),
        "enterprise_customers": len(enterprise),
        "enterprise_mrr_threshold": cfg.enterprise_mrr_threshold,
        **recent,
    }
    return report


def _add_recent(
    report: Report, state: BillingState, summary: MrrSummary, now: datetime
) -> dict[str, int]:
    """Counts over the last 24h, from new customers and the Events seen."""
    since = now.timestamp() - 86400
    recent = list(state.recent.values())
    failed = sum(1 for e in recent if e["type"] == "invoice.payment_failed")
    conversions = sum(1 for e in recent if e["trial_conversion"])
    still_paying = {m.customer for m in summary.subscriptions if m.amount > 0}
    churned = {
        e["customer"]
        for e in recent
        if e["type"] == "customer.subscription.deleted" and e["customer"] not in still_paying
    }
    new_customers = sum(1 for c in state.customers.values() if (c["created"] or 0) >= since)
    for name, doc, value in (
        ("failed_payments_24h", "Invoice payment failures in the last 24 hours.", failed),
        ("new_customers_24h", "Customers created in the last 24 hours.", new_customers),
        (
            "trial_conversions_24h",
            "Subscriptions that went from trialing to active in the last 24 hours.",
            conversions,
        ),
        (
            "churned_customers_24h",
            "Customers whose subscription ended in the last 24 hours and who pay nothing now.",
            len(churned),
        ),
    ):
        family = _gauge(name, doc)
        family.add_metric([], value)
        report.families.append(family)
    return {
        "failed_payments_24h": failed,
        "new_customers_24h": new_customers,
        "trial_conversions_24h": conversions,
        "churned_customers_24h": len(churned),
    }


def _facts(
    state: BillingState, summary: MrrSummary, cfg: StripeConfig, families: list[Metric]
) -> dict[str, Any]:
    """Per product account: customers claiming the same account id are merged (summed/OR-ed)."""
    failed_customers = {
        e["customer"] for e in state.recent.values() if e["type"] == "invoice.payment_failed"
    }
    past_due_customers = {
        str(s["customer"]) for s in state.subscriptions.values() if s.get("status") == "past_due"
    }
    plan_mrr: dict[str, dict[str, float]] = {}
    for sub in summary.subscriptions:
        plans = plan_mrr.setdefault(sub.customer, {})
        for product, amount in sub.by_product.items():
            plans[product] = plans.get(product, 0.0) + amount
    facts: dict[str, dict[str, Any]] = {}
    claims: Counter[str] = Counter()
    missing = 0
    for customer_id, customer in sorted(state.customers.items()):
        account = customer.get("account_id")
        if not account:
            missing += 1
            continue
        claims[account] += 1
        fact = facts.setdefault(
            account,
            {
                "mrr": 0.0,
                "past_due": False,
                "payment_failed_24h": False,
                "plan": None,
                "_plans": {},
            },
        )
        fact["mrr"] += summary.by_customer.get(customer_id, 0.0)
        fact["past_due"] |= customer_id in past_due_customers
        fact["payment_failed_24h"] |= customer_id in failed_customers
        for product, amount in plan_mrr.get(customer_id, {}).items():
            fact["_plans"][product] = fact["_plans"].get(product, 0.0) + amount
    for fact in facts.values():
        plans = fact.pop("_plans")
        fact["plan"] = max(plans, key=plans.__getitem__) if plans else None
        fact["enterprise"] = fact["mrr"] >= cfg.enterprise_mrr_threshold
    issues = GaugeMetricFamily(
        "tensafe_account_join_issues",
        "Upstream objects whose product account id is missing or claimed twice." + CACHED_NOTE,
        labels=["source", "issue"],
    )
    issues.add_metric(["stripe", "missing_id"], missing)
    issues.add_metric(["stripe", "duplicate_id"], sum(n - 1 for n in claims.values() if n > 1))
    families.append(issues)
    return facts
