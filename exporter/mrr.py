"""Monthly recurring revenue from Stripe subscription objects (pure functions, clock passed in).

The rules (defaults in `MrrRules`, each documented in docs/mrr.md):

- Statuses: `active` counts; `past_due` counts while it has been past due for at most
  `past_due_grace_days` (since = the finalisation of the oldest unpaid invoice, passed in by the
  caller, else taken from an expanded `latest_invoice`; unknown means "within grace").
  trialing, incomplete, incomplete_expired, unpaid, canceled and paused never count.
- Items: licensed prices only (metered `usage_type` is excluded): `unit_amount_decimal`
  (else `unit_amount`) x quantity (after `transform_quantity`); tiered prices from their
  `tiers` (graduated: each tier's units at its price plus its flat fee; volume: all units at the
  price of the tier the quantity falls in, plus that tier's flat fee).
- Month normalisation: month x1, year /12, week x52/12, day x365/12, each / interval_count.
- Discounts in effect now (started, `end` not passed, coupon duration forever or repeating;
  `once` coupons are a one-off and do not reduce recurring revenue): item discounts first, then
  subscription discounts; percent_off of the amount, amount_off (per billing period, in the
  coupon's currency or its `currency_options`) normalised to a month; never below zero.
- cancel_at_period_end / cancel_at: counted until the period end (or cancel_at) passes, and
  reported separately as scheduled churn; with `keep_cancel_at_period_end=False` they are
  dropped at once (Stripe Billing's own convention).
- Taxes excluded: exclusive tax is never part of the price; inclusive tax rates are taken out.
- Amounts are minor units: divided by 100, except zero-decimal currencies (JPY, KRW, ...).
- Currencies: converted with `fx_rates` to the reporting currency; a currency without a rate is
  reported in `unconverted` and never added to a converted total.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from exporter.config import MrrRules

# https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg",
        "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    }
)  # fmt: skip

MONTHS_PER_INTERVAL = {"month": 1.0, "year": 1 / 12, "week": 52 / 12, "day": 365 / 12}
"""Multiplier turning one interval's amount into a monthly amount."""

COUNTED_STATUSES = ("active", "past_due")

StripeObject = Mapping[str, Any]


@dataclass(frozen=True)
class SubscriptionMrr:
    """One subscription's monthly revenue in its own currency (major units, after discounts)."""

    subscription: str
    customer: str
    currency: str
    amount: float
    by_product: dict[str, float]
    scheduled_churn: bool
    """cancel_at_period_end (or cancel_at) is set: the revenue ends at the period end."""
    unresolved_discounts: int = 0
    """Discounts given only as ids (not expanded): they could not be applied."""


@dataclass
class MrrSummary:
    """Totals over many subscriptions; converted amounts are in the reporting currency."""

    reporting_currency: str
    by_currency: dict[str, float] = field(default_factory=dict)
    """Native-currency totals (major units), one entry per currency seen."""
    total: float = 0.0
    """Sum of every convertible currency, in the reporting currency."""
    unconverted: dict[str, float] = field(default_factory=dict)
    """Currencies with no rate (native major units): left out of `total` and everything below."""
    by_customer: dict[str, float] = field(default_factory=dict)
    by_product: dict[str, float] = field(default_factory=dict)
    scheduled_churn: float = 0.0
    subscriptions: list[SubscriptionMrr] = field(default_factory=list)


def minor_to_major(amount: float, currency: str) -> float:
    """Stripe amounts are integers in the currency's smallest unit (cents; yen for JPY)."""
    return amount if currency.lower() in ZERO_DECIMAL_CURRENCIES else amount / 100


def to_datetime(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def _unit_amount(obj: StripeObject, key: str = "unit_amount") -> float:
    decimal = obj.get(f"{key}_decimal")
    if decimal is not None:
        return float(decimal)
    value = obj.get(key)
    return float(value) if value is not None else 0.0


def _quantity(item: StripeObject, price: StripeObject) -> float:
    quantity = float(item.get("quantity") or 0)
    transform = price.get("transform_quantity")
    if transform and transform.get("divide_by"):
        divided = quantity / float(transform["divide_by"])
        whole = int(divided)
        rounds_up = transform.get("round") == "up" and divided > whole
        quantity = float(whole + 1 if rounds_up else whole)
    return quantity


def tiered_amount(tiers: Iterable[StripeObject], mode: str, quantity: float) -> float:
    """Amount (minor units) for `quantity` under graduated or volume tiers."""
    total = 0.0
    lower = 0.0
    for tier in tiers:
        upper = float("inf") if tier.get("up_to") is None else float(tier["up_to"])
        if mode == "volume":
            if quantity <= upper:
                return quantity * _unit_amount(tier) + _unit_amount(tier, "flat_amount")
            continue
        units = min(quantity, upper) - lower
        if units <= 0:
            break
        total += units * _unit_amount(tier) + _unit_amount(tier, "flat_amount")
        lower = upper
    return total


def item_amount(item: StripeObject) -> float | None:
    """One billing period's amount of a subscription item (minor units, before discounts).

    None for items that are not recurring revenue (metered) or cannot be priced (tiers missing).
    """
    price = item.get("price") or item.get("plan") or {}
    recurring = price.get("recurring") or {}
    usage_type = recurring.get("usage_type") or price.get("usage_type")
    if usage_type == "metered":
        return None
    quantity = _quantity(item, price)
    if price.get("billing_scheme") == "tiered":
        tiers = price.get("tiers")
        if not tiers:
            return None
        return tiered_amount(tiers, price.get("tiers_mode") or "graduated", quantity)
    return _unit_amount(price) * quantity


def monthly_factor(price: StripeObject) -> float:
    """month x1, year /12, week x52/12, day x365/12, each divided by interval_count."""
    recurring = price.get("recurring") or price
    interval = recurring.get("interval") or "month"
    count = recurring.get("interval_count") or 1
    return MONTHS_PER_INTERVAL[interval] / count


def _exclusive_of_tax(amount: float, tax_rates: Iterable[Any]) -> float:
    inclusive = sum(
        float(rate.get("percentage") or 0)
        for rate in tax_rates
        if isinstance(rate, Mapping) and rate.get("inclusive")
    )
    return amount / (1 + inclusive / 100) if inclusive else amount


def _coupon(discount: Any) -> StripeObject | None:
    """The coupon of an expanded discount (current `source.coupon` or legacy `coupon`)."""
    if not isinstance(discount, Mapping):
        return None
    coupon = (discount.get("source") or {}).get("coupon") or discount.get("coupon")
    return coupon if isinstance(coupon, Mapping) else None


def discount_in_effect(discount: StripeObject, coupon: StripeObject, now: datetime) -> bool:
    """Started, not ended, and a recurring coupon (forever or repeating)."""
    duration = coupon.get("duration")
    if duration == "once":
        return False
    start = to_datetime(discount.get("start"))
    if start is not None and start > now:
        return False
    end = to_datetime(discount.get("end"))
    if end is None and duration == "repeating" and start is not None:
        end = start + timedelta(days=30.4375 * int(coupon.get("duration_in_months") or 0))
    return end is None or end > now


def _apply_discounts(
    amount: float,
    discounts: Iterable[Any],
    currency: str,
    factor: float,
    now: datetime,
) -> tuple[float, int]:
    """Monthly amount (minor units) after the discounts in effect; also counts unresolved ids."""
    unresolved = 0
    for discount in discounts:
        coupon = _coupon(discount)
        if coupon is None:
            unresolved += 1
            continue
        assert isinstance(discount, Mapping)
        if not discount_in_effect(discount, coupon, now):
            continue
        if coupon.get("percent_off") is not None:
            amount -= amount * float(coupon["percent_off"]) / 100
        elif coupon.get("amount_off") is not None:
            amount_off = _coupon_amount_off(coupon, currency)
            amount -= amount_off * factor
    return max(amount, 0.0), unresolved


def _coupon_amount_off(coupon: StripeObject, currency: str) -> float:
    """amount_off in the subscription's currency; 0 when the coupon cannot apply to it."""
    if (coupon.get("currency") or "").lower() == currency:
        return float(coupon["amount_off"])
    option = (coupon.get("currency_options") or {}).get(currency) or {}
    return float(option.get("amount_off") or 0)


def _period_end(subscription: StripeObject) -> datetime | None:
    """When a scheduled cancellation takes effect: cancel_at, else the items' period end."""
    if subscription.get("cancel_at"):
        return to_datetime(subscription["cancel_at"])
    ends = [
        item["current_period_end"]
        for item in _items(subscription)
        if item.get("current_period_end") is not None
    ]
    legacy = subscription.get("current_period_end")
    return to_datetime(max(ends) if ends else legacy)


def _items(subscription: StripeObject) -> list[StripeObject]:
    items = subscription.get("items") or {}
    data = items.get("data") if isinstance(items, Mapping) else items
    return list(data or [])


def past_due_since(subscription: StripeObject) -> datetime | None:
    """From an expanded, still unpaid `latest_invoice`: when it was finalised (else created)."""
    invoice = subscription.get("latest_invoice")
    if not isinstance(invoice, Mapping) or invoice.get("status") != "open":
        return None
    transitions = invoice.get("status_transitions") or {}
    return to_datetime(transitions.get("finalized_at") or invoice.get("created"))


def is_counted(
    subscription: StripeObject,
    now: datetime,
    rules: MrrRules,
    overdue_since: datetime | None = None,
) -> bool:
    """Whether the subscription contributes MRR now (status, grace, scheduled cancellation)."""
    status = subscription.get("status")
    if status not in COUNTED_STATUSES:
        return False
    if status == "past_due":
        if not rules.count_past_due:
            return False
        since = overdue_since or past_due_since(subscription)
        if since is not None and now - since > timedelta(days=rules.past_due_grace_days):
            return False
    if is_scheduled_churn(subscription):
        if not rules.keep_cancel_at_period_end:
            return False
        end = _period_end(subscription)
        if end is not None and end <= now:
            return False
    return True


def is_scheduled_churn(subscription: StripeObject) -> bool:
    return bool(subscription.get("cancel_at_period_end") or subscription.get("cancel_at"))


def subscription_mrr(
    subscription: StripeObject,
    now: datetime,
    rules: MrrRules,
    overdue_since: datetime | None = None,
) -> SubscriptionMrr | None:
    """The subscription's MRR in its own currency, or None when it does not count now."""
    if not is_counted(subscription, now, rules, overdue_since):
        return None
    currency = str(subscription.get("currency") or "usd").lower()
    tax_rates = subscription.get("default_tax_rates") or []
    by_product: dict[str, float] = {}
    subtotal = 0.0
    factor: float | None = None
    unresolved = 0
    for item in _items(subscription):
        amount = item_amount(item)
        if amount is None:
            continue
        price = item.get("price") or item.get("plan") or {}
        item_factor = monthly_factor(price)
        factor = item_factor if factor is None else factor
        amount = _exclusive_of_tax(amount, item.get("tax_rates") or tax_rates) * item_factor
        if rules.subtract_discounts:
            amount, missing = _apply_discounts(
                amount, item.get("discounts") or [], currency, item_factor, now
            )
            unresolved += missing
        product = _product_id(price)
        by_product[product] = by_product.get(product, 0.0) + amount
        subtotal += amount
    total = subtotal
    if rules.subtract_discounts and subtotal > 0:
        discounts = list(subscription.get("discounts") or [])
        legacy = subscription.get("discount")
        if isinstance(legacy, Mapping) and not discounts:
            discounts = [legacy]
        total, missing = _apply_discounts(subtotal, discounts, currency, factor or 1.0, now)
        unresolved += missing
        share = total / subtotal
        by_product = {product: value * share for product, value in by_product.items()}
    return SubscriptionMrr(
        subscription=str(subscription.get("id")),
        customer=_id(subscription.get("customer")),
        currency=currency,
        amount=minor_to_major(total, currency),
        by_product={p: minor_to_major(v, currency) for p, v in by_product.items()},
        scheduled_churn=is_scheduled_churn(subscription),
        unresolved_discounts=unresolved,
    )


def _id(value: Any) -> str:
    return str(value.get("id")) if isinstance(value, Mapping) else str(value)


def _product_id(price: StripeObject) -> str:
    product = price.get("product")
    return _id(product) if product else "unknown"


def fx_rate(currency: str, rules: MrrRules) -> float | None:
    """Reporting-currency value of one unit of `currency`; None when no rate is configured."""
    currency = currency.lower()
    if currency == rules.reporting_currency.lower():
        return 1.0
    rates = {code.lower(): rate for code, rate in rules.fx_rates.items()}
    return rates.get(currency)


def summarize(
    subscriptions: Iterable[StripeObject],
    now: datetime,
    rules: MrrRules,
    overdue_since: Mapping[str, datetime] | None = None,
) -> MrrSummary:
    """MRR by currency, converted total, by customer and by product (see the module rules).

    `overdue_since` maps subscription id -> when it became past due (oldest unpaid invoice).
    """
    overdue_since = overdue_since or {}
    summary = MrrSummary(reporting_currency=rules.reporting_currency.lower())
    for subscription in subscriptions:
        mrr = subscription_mrr(
            subscription, now, rules, overdue_since.get(str(subscription.get("id")))
        )
        if mrr is None:
            continue
        summary.subscriptions.append(mrr)
        currency = mrr.currency
        summary.by_currency[currency] = summary.by_currency.get(currency, 0.0) + mrr.amount
        rate = fx_rate(currency, rules)
        if rate is None:
            summary.unconverted[currency] = summary.unconverted.get(currency, 0.0) + mrr.amount
            continue
        converted = mrr.amount * rate
        summary.total += converted
        customer = summary.by_customer
        customer[mrr.customer] = customer.get(mrr.customer, 0.0) + converted
        for product, amount in mrr.by_product.items():
            summary.by_product[product] = summary.by_product.get(product, 0.0) + amount * rate
        if mrr.scheduled_churn:
            summary.scheduled_churn += converted
    return summary
