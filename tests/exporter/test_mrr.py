"""MRR rules case by case, over Stripe subscription dicts; expected numbers worked out by hand."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exporter.config import MrrRules
from exporter.currency import THREE_DECIMAL, ZERO_DECIMAL, exponent
from exporter.mrr import DiscountBook, subscription_mrr, summarize

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
DAY = 86400
RULES = MrrRules(fx_rates={"eur": 1.10, "jpy": 0.0067})


def price(
    unit_amount: int | None = 1000,
    *,
    interval: str = "month",
    count: int = 1,
    currency: str = "usd",
    product: str = "pro",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": f"price_{product}_{interval}",
        "object": "price",
        "billing_scheme": "per_unit",
        "currency": currency,
        "product": product,
        "recurring": {"interval": interval, "interval_count": count, "usage_type": "licensed"},
        "tax_behavior": "exclusive",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
        **extra,
    }


def sub(
    *items: tuple[dict[str, Any], int],
    status: str = "active",
    currency: str = "usd",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": "sub_1",
        "object": "subscription",
        "customer": "cus_1",
        "currency": currency,
        "status": status,
        "cancel_at_period_end": False,
        "cancel_at": None,
        "discounts": [],
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{n}",
                    "price": p,
                    "quantity": q,
                    "discounts": [],
                    "current_period_start": TS - 10 * DAY,
                    "current_period_end": TS + 20 * DAY,
                }
                for n, (p, q) in enumerate(items)
            ],
        },
        **extra,
    }


def coupon_discount(start: int = TS - DAY, end: int | None = None, **coupon: Any) -> dict[str, Any]:
    return {
        "id": "di_1",
        "object": "discount",
        "start": start,
        "end": end,
        "source": {"type": "coupon", "coupon": {"id": "C", "object": "coupon", **coupon}},
    }


def mrr(subscription: dict[str, Any], rules: MrrRules = RULES, **kw: Any) -> float | None:
    result = subscription_mrr(subscription, NOW, rules, **kw)
    return None if result is None else result.amount


def test_monthly_unit_amount_times_quantity() -> None:
    # 1000 cents x 3 seats = 3000 cents = $30.00
    assert mrr(sub((price(1000), 3))) == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("interval", "count", "expected"),
    [
        ("year", 1, 1200 / 12),  # $1200/yr -> $100/mo
        ("month", 3, 1200 / 3),  # quarterly $1200 -> $400/mo
        ("week", 1, 1200 * 52 / 12),  # $1200/wk -> $5200/mo
        ("week", 2, 1200 * 52 / 12 / 2),  # every 2 weeks -> $2600/mo
        ("day", 1, 1200 * 365 / 12),  # $1200/day -> $36500/mo
    ],
)
def test_interval_normalisation(interval: str, count: int, expected: float) -> None:
    assert mrr(sub((price(120000, interval=interval, count=count), 1))) == pytest.approx(expected)


def test_unit_amount_decimal_wins_over_unit_amount() -> None:
    # 0.5 cent per unit x 10000 units = 5000 cents = $50
    p = price(None, unit_amount_decimal="0.5")
    assert mrr(sub((p, 10000))) == pytest.approx(50.0)


def test_graduated_tiers() -> None:
    # 1-10 at $10, 11-50 at $8 (+$5 flat), 51+ at $6. 60 units:
    # 10*10 + (40*8 + 5) + 10*6 = 100 + 325 + 60 = $485
    tiers = [
        {"up_to": 10, "unit_amount": 1000, "flat_amount": None},
        {"up_to": 50, "unit_amount": 800, "flat_amount": 500},
        {"up_to": None, "unit_amount": 600, "flat_amount": None},
    ]
    p = price(None, billing_scheme="tiered", tiers_mode="graduated", tiers=tiers)
    assert mrr(sub((p, 60))) == pytest.approx(485.0)


def test_volume_tiers() -> None:
    # Volume: all 60 units at the 51+ tier price $6 + its $20 flat = 360 + 20 = $380
    tiers = [
        {"up_to": 10, "unit_amount": 1000},
        {"up_to": 50, "unit_amount": 800},
        {"up_to": None, "unit_amount": 600, "flat_amount": 2000},
    ]
    p = price(None, billing_scheme="tiered", tiers_mode="volume", tiers=tiers)
    assert mrr(sub((p, 60))) == pytest.approx(380.0)
    # 10 units is still the first tier: 10 * $10 = $100
    assert mrr(sub((p, 10))) == pytest.approx(100.0)


def test_tiered_price_without_tiers_is_left_out() -> None:
    p = price(None, billing_scheme="tiered", tiers_mode="volume")
    # only the $20 seat item is priced
    assert mrr(sub((p, 5), (price(2000, product="addon"), 1))) == pytest.approx(20.0)


def test_metered_items_are_excluded() -> None:
    metered = price(5, product="gpu")
    metered["recurring"]["usage_type"] = "metered"
    # $50 licensed + metered (ignored) = $50
    assert mrr(sub((price(5000), 1), (metered, 100000))) == pytest.approx(50.0)


def test_transform_quantity_rounds_per_price() -> None:
    # 25 units in packs of 10, rounded up = 3 packs x $7 = $21
    p = price(700, transform_quantity={"divide_by": 10, "round": "up"})
    assert mrr(sub((p, 25))) == pytest.approx(21.0)


@pytest.mark.parametrize(
    "status", ["trialing", "incomplete", "incomplete_expired", "unpaid", "canceled", "paused"]
)
def test_excluded_statuses(status: str) -> None:
    assert mrr(sub((price(1000), 1), status=status)) is None


def test_past_due_counts_within_grace_only() -> None:
    s = sub((price(1000), 1), status="past_due")
    assert mrr(s, overdue_since=NOW - timedelta(days=29)) == pytest.approx(10.0)
    assert mrr(s, overdue_since=NOW - timedelta(days=31)) is None
    # the grace period is configurable; no past_due at all is also a choice
    assert mrr(s, MrrRules(past_due_grace_days=40), overdue_since=NOW - timedelta(days=31)) == 10.0
    assert mrr(s, MrrRules(count_past_due=False)) is None


def test_past_due_since_from_expanded_latest_invoice() -> None:
    invoice = {
        "id": "in_1",
        "status": "open",
        "created": TS - 45 * DAY,
        "status_transitions": {"finalized_at": TS - 40 * DAY},
    }
    assert mrr(sub((price(1000), 1), status="past_due", latest_invoice=invoice)) is None
    invoice["status_transitions"] = {"finalized_at": TS - 5 * DAY}
    assert mrr(sub((price(1000), 1), status="past_due", latest_invoice=invoice)) == 10.0


def test_percent_discount_forever() -> None:
    # $100 - 25% = $75
    d = coupon_discount(percent_off=25, duration="forever")
    assert mrr(sub((price(10000), 1), discounts=[d])) == pytest.approx(75.0)


def test_amount_off_is_per_billing_period() -> None:
    # yearly $1200 with $120 off each invoice: (1200 - 120) / 12 = $90/mo
    d = coupon_discount(amount_off=12000, currency="usd", duration="forever")
    assert mrr(sub((price(120000, interval="year"), 1), discounts=[d])) == pytest.approx(90.0)


def test_amount_off_in_another_currency_uses_currency_options() -> None:
    # EUR sub 50 EUR; coupon is USD 10 off with a EUR option of 9: 50 - 9 = 41 EUR
    d = coupon_discount(
        amount_off=1000,
        currency="usd",
        currency_options={"eur": {"amount_off": 900}},
        duration="forever",
    )
    s = sub((price(5000, currency="eur"), 1), currency="eur", discounts=[d])
    assert mrr(s) == pytest.approx(41.0)
    d["source"]["coupon"]["currency_options"] = {}
    assert mrr(s) == pytest.approx(50.0)  # a USD coupon cannot discount a EUR invoice


def test_expired_future_and_once_discounts_do_not_apply() -> None:
    expired = coupon_discount(percent_off=50, duration="repeating", end=TS - 1)
    future = coupon_discount(percent_off=50, duration="forever", start=TS + DAY)
    once = coupon_discount(percent_off=50, duration="once")
    for d in (expired, future, once):
        assert mrr(sub((price(10000), 1), discounts=[d])) == pytest.approx(100.0)


def test_repeating_discount_without_end_uses_duration_in_months() -> None:
    # started 2 months ago, 3 months long: still on. 6 months ago: over.
    on = coupon_discount(
        percent_off=10, duration="repeating", duration_in_months=3, start=TS - 61 * DAY
    )
    off = coupon_discount(
        percent_off=10, duration="repeating", duration_in_months=3, start=TS - 183 * DAY
    )
    assert mrr(sub((price(10000), 1), discounts=[on])) == pytest.approx(90.0)
    assert mrr(sub((price(10000), 1), discounts=[off])) == pytest.approx(100.0)


def test_discount_ids_are_reported_unresolved_not_guessed() -> None:
    s = sub((price(10000), 1), discounts=["di_123"])
    s["items"]["data"][0]["discounts"] = ["di_item"]
    result = subscription_mrr(s, NOW, RULES)
    assert result is not None
    assert result.amount == pytest.approx(100.0)
    assert result.unresolved_discounts == ("di_item", "di_123")
    # a discount whose coupon is an id the book does not know is just as unresolved
    known = coupon_discount(percent_off=10, duration="forever")
    known["source"]["coupon"] = "GONE"
    result = subscription_mrr(sub((price(10000), 1), discounts=[known]), NOW, RULES)
    assert result is not None and result.unresolved_discounts == ("di_1",)


def test_discount_and_coupon_ids_resolved_from_the_book() -> None:
    # events and unexpanded listings name discounts (and discounts name coupons) by id
    discount = {"id": "di_9", "object": "discount", "start": TS - DAY, "end": None,
                "source": {"type": "coupon", "coupon": "HALF"}}  # fmt: skip
    half = {"id": "HALF", "object": "coupon", "percent_off": 50.0, "duration": "forever"}
    book = DiscountBook(discounts={"di_9": discount}, coupons={"HALF": half})
    s = sub((price(10000, product="pro"), 1), (price(4000, product="addon"), 1))
    s["items"]["data"][1]["discounts"] = ["di_9"]  # item-level, as an event sends it
    result = subscription_mrr(s, NOW, RULES, book=book)
    assert result is not None and result.unresolved_discounts == ()
    assert result.by_product == pytest.approx({"pro": 100.0, "addon": 20.0})
    assert result.amount == pytest.approx(120.0)


def test_book_coupon_with_applies_to_wins_over_an_expanded_coupon() -> None:
    # an expanded `source.coupon` lacks `applies_to` (included only on request): the coupon
    # retrieved with it decides which items are discounted
    d = coupon_discount(percent_off=50, duration="forever")
    addon_only = {**d["source"]["coupon"], "applies_to": {"products": ["addon"]}}
    book = DiscountBook(coupons={"C": addon_only})
    s = sub((price(10000, product="pro"), 1), (price(4000, product="addon"), 1), discounts=[d])
    assert mrr(s) == pytest.approx(70.0)  # unrestricted: (100 + 40) / 2
    assert mrr(s, book=book) == pytest.approx(120.0)  # addon only: 100 + 40 / 2


def test_discount_never_below_zero_and_can_be_switched_off() -> None:
    d = coupon_discount(amount_off=99999, currency="usd", duration="forever")
    assert mrr(sub((price(1000), 1), discounts=[d])) == 0.0
    assert mrr(sub((price(1000), 1), discounts=[d]), MrrRules(subtract_discounts=False)) == 10.0


def test_item_discount_then_subscription_discount() -> None:
    # item A $100 with 10% item discount -> $90; item B $50; subtotal $140; sub 50% -> $70
    s = sub((price(10000, product="pro"), 1), (price(5000, product="addon"), 1))
    s["items"]["data"][0]["discounts"] = [coupon_discount(percent_off=10, duration="forever")]
    s["discounts"] = [coupon_discount(percent_off=50, duration="forever")]
    result = subscription_mrr(s, NOW, RULES)
    assert result is not None
    assert result.amount == pytest.approx(70.0)
    # the subscription discount is shared pro rata: pro 90*0.5 = 45, addon 50*0.5 = 25
    assert result.by_product == pytest.approx({"pro": 45.0, "addon": 25.0})


def test_cancel_at_period_end_counts_until_the_period_ends() -> None:
    s = sub((price(1000), 1), cancel_at_period_end=True)
    result = subscription_mrr(s, NOW, RULES)
    assert result is not None and result.amount == 10.0 and result.scheduled_churn
    s["items"]["data"][0]["current_period_end"] = TS - 1  # period over, not yet canceled
    assert mrr(s) is None
    # Stripe Billing's own convention: drop it at once
    s["items"]["data"][0]["current_period_end"] = TS + DAY
    assert mrr(s, MrrRules(keep_cancel_at_period_end=False)) is None


def test_discount_comes_off_before_inclusive_tax_is_taken_out() -> None:
    # $120 including 20% VAT with $20 off: Stripe taxes the discounted $100, so the net is
    # 100 / 1.2 = $83.33 (taking the tax out first would give 120 / 1.2 - 20 = $80)
    s = sub((price(12000), 1))
    s["items"]["data"][0]["tax_rates"] = [{"percentage": 20.0, "inclusive": True}]
    s["discounts"] = [coupon_discount(amount_off=2000, currency="usd", duration="forever")]
    assert mrr(s) == pytest.approx(83.3333, abs=1e-4)
    # the same with the discount on the item and the rate as the subscription's default
    s["items"]["data"][0]["discounts"], s["discounts"] = s["discounts"], []
    s["items"]["data"][0]["tax_rates"] = []
    s["default_tax_rates"] = [{"percentage": 20.0, "inclusive": True}]
    assert mrr(s) == pytest.approx(83.3333, abs=1e-4)


def test_amount_off_is_shared_over_items_with_their_own_tax() -> None:
    # A $120 incl. 20% VAT + B $60 exclusive; $30 off the $180 subtotal: A bears 20, B 10.
    # A: (120 - 20) / 1.2 = 83.33; B: 60 - 10 = 50; total 133.33
    s = sub((price(12000, product="a"), 1), (price(6000, product="b"), 1))
    s["items"]["data"][0]["tax_rates"] = [{"percentage": 20.0, "inclusive": True}]
    s["discounts"] = [coupon_discount(amount_off=3000, currency="usd", duration="forever")]
    result = subscription_mrr(s, NOW, RULES)
    assert result is not None
    assert result.by_product == pytest.approx({"a": 83.3333, "b": 50.0}, abs=1e-4)


def test_coupon_applies_to_products_discounts_only_those_items() -> None:
    # pro $100 + addon $50; a coupon restricted to the addon
    restricted = {"applies_to": {"products": ["addon"]}, "duration": "forever"}
    s = sub((price(10000, product="pro"), 1), (price(5000, product="addon"), 1))
    s["discounts"] = [coupon_discount(percent_off=50, **restricted)]
    result = subscription_mrr(s, NOW, RULES)
    assert result is not None  # 100 + 50 * 0.5
    assert result.by_product == pytest.approx({"pro": 100.0, "addon": 25.0})
    # amount_off comes off the eligible items only, and never more than they cost
    s["discounts"] = [coupon_discount(amount_off=3000, currency="usd", **restricted)]
    assert mrr(s) == pytest.approx(120.0)
    s["discounts"] = [coupon_discount(amount_off=9000, currency="usd", **restricted)]
    assert mrr(s) == pytest.approx(100.0)
    # an item discount whose coupon names another product does not touch the item
    s["discounts"] = []
    s["items"]["data"][0]["discounts"] = [coupon_discount(percent_off=50, **restricted)]
    assert mrr(s) == pytest.approx(150.0)
    # `applies_to` with no products (or null) restricts nothing
    s["items"]["data"][0]["discounts"] = [
        coupon_discount(percent_off=50, duration="forever", applies_to={"products": []})
    ]
    assert mrr(s) == pytest.approx(100.0)


def test_paused_collection_is_excluded_while_in_effect() -> None:
    # Stripe's "pause payment collection": the subscription stays `active`, nothing is collected
    paused = {"behavior": "void", "resumes_at": None}
    s = sub((price(10000), 1), pause_collection=paused)
    assert mrr(s) is None  # paused until further notice
    paused["resumes_at"] = TS + DAY
    assert mrr(s) is None  # resumes tomorrow
    paused["resumes_at"] = TS - 1
    assert mrr(s) == pytest.approx(100.0)  # resumed: collecting again
    paused["resumes_at"] = None
    assert mrr(s, MrrRules(count_paused_collection=True)) == pytest.approx(100.0)
    assert summarize([s], NOW, RULES).total == 0.0


def test_inclusive_tax_is_taken_out_exclusive_is_never_in() -> None:
    # $120 including 20% VAT -> $100 net
    s = sub((price(12000), 1))
    s["items"]["data"][0]["tax_rates"] = [{"percentage": 20.0, "inclusive": True}]
    assert mrr(s) == pytest.approx(100.0)
    s["items"]["data"][0]["tax_rates"] = [{"percentage": 20.0, "inclusive": False}]
    assert mrr(s) == pytest.approx(120.0)


def test_zero_decimal_currency() -> None:
    # 5000 JPY is 5000 yen, not 50
    assert mrr(sub((price(5000, currency="jpy"), 2), currency="jpy")) == 10000.0


# Stripe's lists (https://docs.stripe.com/currencies): zero-decimal, three-decimal, and
# currencies that charge whole units yet stay two-decimal in the API (ISK, HUF, TWD).
@pytest.mark.parametrize(
    ("currency", "decimals"),
    [(c, 0) for c in sorted(ZERO_DECIMAL)]
    + [(c, 3) for c in sorted(THREE_DECIMAL)]
    + [(c, 2) for c in ("usd", "eur", "gbp", "isk", "huf", "twd", "idr", "inr")],
)
def test_currency_minor_units_as_stripe_uses_them(currency: str, decimals: int) -> None:
    assert exponent(currency) == exponent(currency.upper()) == decimals
    # 12,340 minor units a month: 12340 JPY, 12.340 KWD, 123.40 USD
    s = sub((price(12340, currency=currency), 1), currency=currency)
    assert mrr(s) == pytest.approx(12340 / 10**decimals)


def test_three_decimal_currency_with_amount_off_coupon() -> None:
    # 25.000 KWD a month with a 5.000 KWD coupon: 20 KWD, not 200
    d = coupon_discount(amount_off=5000, currency="kwd", duration="forever")
    s = sub((price(25000, currency="kwd"), 1), currency="kwd", discounts=[d])
    assert mrr(s) == pytest.approx(20.0)


def test_summary_converts_and_keeps_unknown_currencies_apart() -> None:
    usd = sub((price(10000), 1), id="sub_usd", customer="cus_a")
    eur = sub((price(5000, currency="eur"), 2), currency="eur", id="sub_eur", customer="cus_a")
    jpy = sub((price(3000, currency="jpy"), 1), currency="jpy", id="sub_jpy", customer="cus_b")
    gbp = sub((price(2000, currency="gbp"), 1), currency="gbp", id="sub_gbp", customer="cus_c")
    summary = summarize([usd, eur, jpy, gbp], NOW, RULES)
    assert summary.by_currency == pytest.approx({"usd": 100, "eur": 100, "jpy": 3000, "gbp": 20})
    # 100 USD + 100 EUR * 1.10 + 3000 JPY * 0.0067 = 100 + 110 + 20.1 = 230.1; GBP has no rate
    assert summary.total == pytest.approx(230.1)
    assert summary.unconverted == {"gbp": 20.0}
    assert summary.by_customer == pytest.approx({"cus_a": 210.0, "cus_b": 20.1})
    assert summary.by_product == pytest.approx({"pro": 230.1})


def test_summary_scheduled_churn_and_excluded_subscriptions() -> None:
    keep = sub((price(10000), 1), id="sub_k", customer="cus_a")
    leaving = sub((price(2500), 2), id="sub_l", customer="cus_b", cancel_at_period_end=True)
    trial = sub((price(9900), 1), id="sub_t", customer="cus_c", status="trialing")
    summary = summarize([keep, leaving, trial], NOW, RULES)
    assert summary.total == pytest.approx(150.0)  # 100 + 25*2; the trial is out
    assert summary.scheduled_churn == pytest.approx(50.0)
    assert [s.subscription for s in summary.subscriptions] == ["sub_k", "sub_l"]


def test_summary_reports_unresolved_discounts_and_the_mrr_they_touch() -> None:
    plain = sub((price(10000), 1), id="sub_a", customer="cus_a")
    unknown = sub((price(5000, currency="eur"), 1), currency="eur", id="sub_b", customer="cus_b")
    unknown["discounts"] = ["di_unknown"]
    summary = summarize([plain, unknown], NOW, RULES)
    assert summary.unresolved_discounts == {"di_unknown"}
    assert summary.unresolved_discount_mrr == pytest.approx(55.0)  # 50 EUR x 1.10, undiscounted


def test_summary_past_due_grace_from_caller_map() -> None:
    late = sub((price(1000), 1), id="sub_late", status="past_due")
    summary = summarize([late], NOW, RULES, {"sub_late": NOW - timedelta(days=45)})
    assert summary.total == 0.0
    assert summarize([late], NOW, RULES, {}).total == 10.0  # unknown since: within grace
