"""Monthly recurring revenue from Stripe subscription objects (pure functions, clock passed in).

The rules (defaults in `MrrRules`, each documented in docs/mrr.md):

- Statuses: `active` counts; `past_due` counts while it has been past due for at most
  `past_due_grace_days` (since = the finalisation of the oldest unpaid invoice, passed in by the
  caller, else taken from an expanded `latest_invoice`; unknown means "within grace").
  trialing, incomplete, incomplete_expired, unpaid, canceled and paused never count. An active
  subscription whose payment collection is paused (`pause_collection` set, `resumes_at` unset or
  still ahead) does not count either, unless `count_paused_collection`.
- Items: licensed prices only (metered `usage_type` is excluded): `unit_amount_decimal`
  (else `unit_amount`) x quantity (after `transform_quantity`); tiered prices from their
  `tiers` (graduated: each tier's units at its price plus its flat fee; volume: all units at the
  price of the tier the quantity falls in, plus that tier's flat fee).
- Month normalisation: month x1, year /12, week x52/12, day x365/12, each / interval_count.
- Discounts in effect now (started, `end` not passed, coupon duration forever or repeating;
  `once` coupons are a one-off and do not reduce recurring revenue): item discounts first, then
  subscription discounts, each only on the items whose product its coupon `applies_to` (all
  items when it names none); percent_off of the amount, amount_off (per billing period, in the
  coupon's currency or its `currency_options`) normalised to a month and shared pro rata over
  the eligible items; never below zero. Discounts and coupons given as ids are looked up in a
  `DiscountBook`; ids it does not know are reported, never guessed.
- Taxes excluded: exclusive tax is never part of the price; inclusive tax is taken out of the
  discounted amount (Stripe taxes what is left after the discount).
- cancel_at_period_end / cancel_at: counted until the period end (or cancel_at) passes, and
  reported separately as scheduled churn; with `keep_cancel_at_period_end=False` they are
  dropped at once (Stripe Billing's own convention).
- Amounts are minor units: divided by 10^exponent of the currency as Stripe uses it
  (`exporter.currency`: 0 for JPY, 3 for KWD, 2 otherwise).
- Currencies: converted with `fx_rates` to the reporting currency; a currency without a rate is
  reported in `unconverted` and never added to a converted total.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from exporter.config import MrrRules
from exporter.currency import minor_to_major

MONTHS_PER_INTERVAL = {"month": 1.0, "year": 1 / 12, "week": 52 / 12, "day": 365 / 12}
"""Multiplier turning one interval's amount into a monthly amount."""

COUNTED_STATUSES = ("active", "past_due")

StripeObject = Mapping[str, Any]


@dataclass(frozen=True)
class DiscountBook:
    """Discount objects and coupons by id. Stripe sends both as ids unless a request expands
    them (events never do), so the caller passes what it has resolved before."""

    discounts: Mapping[str, StripeObject] = field(default_factory=dict)
    coupons: Mapping[str, StripeObject] = field(default_factory=dict)


NO_BOOK = DiscountBook()


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
    unresolved_discounts: tuple[str, ...] = ()
    """Discounts whose object or coupon is known by id only: they could not be applied, so
    `amount` is before them (an upper bound)."""


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
    unresolved_discounts: set[str] = field(default_factory=set)
    """Ids of the discounts that could not be applied, over every counted subscription."""
    unresolved_discount_mrr: float = 0.0
    """Converted MRR of the subscriptions carrying such a discount (counted undiscounted)."""


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


def _tax_divisor(tax_rates: Iterable[Any]) -> float:
    """What an amount is divided by to take its inclusive tax out (1 without any)."""
    inclusive = sum(
        float(rate.get("percentage") or 0)
        for rate in tax_rates
        if isinstance(rate, Mapping) and rate.get("inclusive")
    )
    return 1 + inclusive / 100


def _resolve(entry: Any, book: DiscountBook) -> tuple[StripeObject | None, StripeObject | None]:
    """The discount and its coupon from an expanded discount or a discount id (None if unknown).

    A coupon is read from `source.coupon` (current API) or `coupon` (before 2025-03-31.basil),
    as an id looked up in the book or an object; the book's copy wins, as the source retrieves
    coupons with `applies_to` and `currency_options`, which an expanded coupon lacks.
    """
    discount = book.discounts.get(entry) if isinstance(entry, str) else entry
    if not isinstance(discount, Mapping):
        return None, None
    coupon = (discount.get("source") or {}).get("coupon") or discount.get("coupon")
    if isinstance(coupon, Mapping):
        coupon = book.coupons.get(str(coupon.get("id")), coupon)
    elif isinstance(coupon, str):
        coupon = book.coupons.get(coupon)
    return discount, coupon if isinstance(coupon, Mapping) else None


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


def applies_to(coupon: StripeObject, product: str) -> bool:
    """`coupon.applies_to.products` restricts a coupon to those products; none: every product."""
    restriction = coupon.get("applies_to")
    products = restriction.get("products") if isinstance(restriction, Mapping) else None
    return not products or product in products


@dataclass
class _Line:
    """One priced item: its monthly amount as billed (minor units, inclusive tax still in)."""

    product: str
    amount: float
    tax_divisor: float


def _apply_discounts(
    lines: list[_Line],
    discounts: Iterable[Any],
    currency: str,
    factor: float,
    now: datetime,
    book: DiscountBook,
) -> list[str]:
    """Take the discounts in effect off `lines` (in place); return the ids left unresolved.

    percent_off takes its share of every eligible line; amount_off (one billing period's worth,
    normalised by `factor`) is shared over the eligible lines pro rata and never exceeds them.
    """
    unresolved = []
    for entry in discounts:
        discount, coupon = _resolve(entry, book)
        if discount is None or coupon is None:
            unresolved.append(_id(entry))
            continue
        if not discount_in_effect(discount, coupon, now):
            continue
        eligible = [line for line in lines if applies_to(coupon, line.product)]
        base = sum(line.amount for line in eligible)
        if base <= 0:
            continue
        if coupon.get("percent_off") is not None:
            off = base * min(float(coupon["percent_off"]), 100.0) / 100
        elif coupon.get("amount_off") is not None:
            off = min(base, _coupon_amount_off(coupon, currency) * factor)
        else:
            continue
        for line in eligible:
            line.amount -= off * line.amount / base
    return unresolved


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


def collection_paused(subscription: StripeObject, now: datetime) -> bool:
    """`pause_collection` is set and in effect: no `resumes_at`, or one still ahead."""
    pause = subscription.get("pause_collection")
    if not isinstance(pause, Mapping):
        return False
    resumes = to_datetime(pause.get("resumes_at"))
    return resumes is None or resumes > now


def is_counted(
    subscription: StripeObject,
    now: datetime,
    rules: MrrRules,
    overdue_since: datetime | None = None,
) -> bool:
    """Whether the subscription contributes MRR now (status, grace, pause, cancellation)."""
    status = subscription.get("status")
    if status not in COUNTED_STATUSES:
        return False
    if status == "past_due" and not _within_grace(subscription, now, rules, overdue_since):
        return False
    if not rules.count_paused_collection and collection_paused(subscription, now):
        return False
    if is_scheduled_churn(subscription):
        if not rules.keep_cancel_at_period_end:
            return False
        end = _period_end(subscription)
        if end is not None and end <= now:
            return False
    return True


def _within_grace(
    subscription: StripeObject, now: datetime, rules: MrrRules, overdue_since: datetime | None
) -> bool:
    """A past_due subscription still counts: past due for at most the grace period."""
    if not rules.count_past_due:
        return False
    since = overdue_since or past_due_since(subscription)
    return since is None or now - since <= timedelta(days=rules.past_due_grace_days)


def is_scheduled_churn(subscription: StripeObject) -> bool:
    return bool(subscription.get("cancel_at_period_end") or subscription.get("cancel_at"))


def subscription_mrr(
    subscription: StripeObject,
    now: datetime,
    rules: MrrRules,
    overdue_since: datetime | None = None,
    book: DiscountBook = NO_BOOK,
) -> SubscriptionMrr | None:
    """The subscription's MRR in its own currency, or None when it does not count now.

    Order, as Stripe bills it: each item's price, its own discounts, then the subscription's
    discounts over the items, and only then inclusive tax taken out of what is left.
    """
    if not is_counted(subscription, now, rules, overdue_since):
        return None
    currency = str(subscription.get("currency") or "usd").lower()
    default_tax_rates = subscription.get("default_tax_rates") or []
    lines: list[_Line] = []
    factor: float | None = None
    unresolved: list[str] = []
    for item in _items(subscription):
        amount = item_amount(item)
        if amount is None:
            continue
        price = item.get("price") or item.get("plan") or {}
        item_factor = monthly_factor(price)
        factor = item_factor if factor is None else factor
        line = _Line(
            _product_id(price),
            amount * item_factor,
            _tax_divisor(item.get("tax_rates") or default_tax_rates),
        )
        if rules.subtract_discounts:
            unresolved += _apply_discounts(
                [line], item.get("discounts") or [], currency, item_factor, now, book
            )
        lines.append(line)
    if rules.subtract_discounts:
        discounts = list(subscription.get("discounts") or [])
        legacy = subscription.get("discount")
        if legacy and not discounts:
            discounts = [legacy]
        unresolved += _apply_discounts(lines, discounts, currency, factor or 1.0, now, book)
    by_product: dict[str, float] = {}
    for line in lines:
        net = max(line.amount, 0.0) / line.tax_divisor
        by_product[line.product] = by_product.get(line.product, 0.0) + net
    return SubscriptionMrr(
        subscription=str(subscription.get("id")),
        customer=_id(subscription.get("customer")),
        currency=currency,
        amount=minor_to_major(sum(by_product.values()), currency),
        by_product={p: minor_to_major(v, currency) for p, v in by_product.items()},
        scheduled_churn=is_scheduled_churn(subscription),
        unresolved_discounts=tuple(unresolved),
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
    book: DiscountBook = NO_BOOK,
) -> MrrSummary:
    """MRR by currency, converted total, by customer and by product (see the module rules).

    `overdue_since` maps subscription id -> when it became past due (oldest unpaid invoice);
    `book` holds the discounts and coupons the subscriptions name by id.
    """
    overdue_since = overdue_since or {}
    summary = MrrSummary(reporting_currency=rules.reporting_currency.lower())
    for subscription in subscriptions:
        mrr = subscription_mrr(
            subscription, now, rules, overdue_since.get(str(subscription.get("id"))), book
        )
        if mrr is None:
            continue
        summary.subscriptions.append(mrr)
        summary.unresolved_discounts.update(mrr.unresolved_discounts)
        currency = mrr.currency
        summary.by_currency[currency] = summary.by_currency.get(currency, 0.0) + mrr.amount
        rate = fx_rate(currency, rules)
        if rate is None:
            summary.unconverted[currency] = summary.unconverted.get(currency, 0.0) + mrr.amount
            continue
        converted = mrr.amount * rate
        summary.total += converted
        if mrr.unresolved_discounts:
            summary.unresolved_discount_mrr += converted
        customer = summary.by_customer
        customer[mrr.customer] = customer.get(mrr.customer, 0.0) + converted
        for product, amount in mrr.by_product.items():
            summary.by_product[product] = summary.by_product.get(product, 0.0) + amount * rate
        if mrr.scheduled_churn:
            summary.scheduled_churn += converted
    return summary
