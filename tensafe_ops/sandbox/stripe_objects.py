"""Builders of Stripe objects in the current API shape, as the simulated world stores them.

Null nullable-enum / anyOf fields are left out: the 2023-08-16 contract's strict schema rejects
null there although Stripe sends it. Besides the current fields, objects carry the fields that
contract still requires (subscription.current_period_*, discount.coupon, invoice.paid...): a
superset that validates against the trimmed official contract; the exporter reads the current
ones. The world-file format is described in docs/world-file/stripe.md.
"""

from typing import Any

from tensafe_ops.sandbox.world import World

DAY = 86400

Obj = dict[str, Any]


def _price(
    pid: str, product: str, amount: int | None, interval: str = "month", **extra: Any
) -> Obj:
    usage_type = extra.pop("usage_type", "licensed")
    return {
        "id": pid,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": 1_700_000_000,
        "currency": extra.pop("currency", "usd"),
        "livemode": False,
        "lookup_key": pid.removeprefix("price_"),
        "metadata": {},
        "nickname": pid.removeprefix("price_").replace("_", " "),
        "product": product,
        "recurring": {
            "interval": interval,
            "interval_count": extra.pop("interval_count", 1),
            "meter": None,
            "usage_type": usage_type,
            "trial_period_days": None,
        },
        "tax_behavior": "exclusive",
        "type": "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": None if amount is None else str(amount),
        **extra,
    }


def catalog() -> tuple[list[Obj], list[Obj]]:
    """Products (ids are readable plan names: Stripe allows custom ids) and their prices."""
    products = [
        {"id": pid, "object": "product", "name": name, "active": True, "metadata": {}}
        for pid, name in (
            ("starter", "Starter"),
            ("pro", "Pro"),
            ("enterprise", "Enterprise"),
            ("sso_addon", "SSO add-on"),
            ("gpu_hours", "GPU hours (metered)"),
        )
    ]
    graduated = [
        {"up_to": 50, "unit_amount": 8000, "unit_amount_decimal": "8000", "flat_amount": None},
        {"up_to": 200, "unit_amount": 6000, "unit_amount_decimal": "6000", "flat_amount": None},
        {"up_to": None, "unit_amount": 4000, "unit_amount_decimal": "4000", "flat_amount": None},
    ]
    volume = [
        {"up_to": 100, "unit_amount": 7500, "unit_amount_decimal": "7500", "flat_amount": 50000},
        {"up_to": None, "unit_amount": 5000, "unit_amount_decimal": "5000", "flat_amount": 50000},
    ]
    tiered: dict[str, Any] = {"billing_scheme": "tiered", "unit_amount_decimal": None}
    prices = [
        _price("price_starter_monthly", "starter", 2900),
        _price("price_starter_yearly", "starter", 29000, "year"),
        _price("price_starter_weekly", "starter", 900, "week"),
        _price("price_pro_monthly", "pro", 9900),
        _price("price_pro_monthly_eur", "pro", 9000, currency="eur"),
        _price("price_pro_quarterly", "pro", 27000, interval_count=3),
        _price("price_pro_yearly", "pro", 99000, "year"),
        _price(
            "price_enterprise_graduated",
            "enterprise",
            None,
            tiers_mode="graduated",
            tiers=graduated,
            **tiered,
        ),
        _price(
            "price_enterprise_volume",
            "enterprise",
            None,
            tiers_mode="volume",
            tiers=volume,
            **tiered,
        ),
        _price("price_enterprise_jpy", "enterprise", 9000, currency="jpy"),
        _price("price_sso_monthly", "sso_addon", 20000),
        _price("price_sso_daily", "sso_addon", 700, "day"),
        _price("price_gpu_metered", "gpu_hours", 250, usage_type="metered"),
    ]
    return products, prices


def coupons() -> list[Obj]:
    base = {"object": "coupon", "created": 1_700_000_000, "livemode": False, "valid": True}
    return [
        {**base, "id": "LAUNCH20", "percent_off": 20.0, "amount_off": None, "currency": None,
         "duration": "forever", "duration_in_months": None, "times_redeemed": 0},
        {**base, "id": "SAVE50USD", "percent_off": None, "amount_off": 5000, "currency": "usd",
         "duration": "repeating", "duration_in_months": 6, "times_redeemed": 0},
        {**base, "id": "WELCOME", "percent_off": 100.0, "amount_off": None, "currency": None,
         "duration": "once", "duration_in_months": None, "times_redeemed": 0},
    ]  # fmt: skip


def product_coupons() -> list[Obj]:
    """Coupons restricted to products (`applies_to`, returned only when expanded)."""
    base = {"object": "coupon", "created": 1_700_000_000, "livemode": False, "valid": True}
    return [
        {**base, "id": "SSO_HALF", "percent_off": 50.0, "amount_off": None, "currency": None,
         "duration": "forever", "duration_in_months": None, "times_redeemed": 0,
         "applies_to": {"products": ["sso_addon"]}},
        {**base, "id": "PRO10USD", "percent_off": None, "amount_off": 1000, "currency": "usd",
         "duration": "forever", "duration_in_months": None, "times_redeemed": 0,
         "applies_to": {"products": ["pro"]}},
    ]  # fmt: skip


def make_customer(cid: str, created: int, account_id: str | None, name: str) -> Obj:
    return {
        "id": cid,
        "object": "customer",
        "created": created,
        "currency": "usd",
        "delinquent": False,
        "description": None,
        "email": None,
        "livemode": False,
        "metadata": {} if account_id is None else {"account_id": account_id},
        "name": name,
    }


def make_item(sid: str, n: int, price: Obj, quantity: int, start: int, end: int) -> Obj:
    return {
        "id": f"si_{sid.removeprefix('sub_')}{n}",
        "object": "subscription_item",
        "created": start,
        "discounts": [],
        "metadata": {},
        "price": price,
        "quantity": quantity,
        "subscription": sid,
        "tax_rates": [],
        "current_period_start": start,
        "current_period_end": end,
    }


def period_end(start: int, price: Obj) -> int:
    recurring = price["recurring"]
    days = {"day": 1, "week": 7, "month": 30, "year": 365}[recurring["interval"]]
    return start + days * DAY * int(recurring["interval_count"])


def make_discount(
    did: str, coupon: Obj, customer: str, sid: str, start: int, item: str | None = None
) -> Obj:
    """A discount in the current shape (the coupon in `source.coupon`; no legacy `coupon`).

    With `item`, it is an item-level discount (it goes in that item's `discounts`).
    """
    end = None
    if coupon["duration"] == "repeating":
        end = start + int(coupon["duration_in_months"]) * 30 * DAY
    return {
        "id": did,
        "object": "discount",
        "checkout_session": None,
        "customer": customer,
        "end": end,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": None,
        "source": {"type": "coupon", "coupon": coupon},
        "start": start,
        "subscription": sid,
        "subscription_item": item,
    }


def make_subscription(sid: str, customer: str, items: list[Obj], status: str, created: int) -> Obj:
    start = min(i["current_period_start"] for i in items)
    end = max(i["current_period_end"] for i in items)
    return {
        "id": sid,
        "object": "subscription",
        "automatic_tax": {"enabled": False, "liability": None},
        "billing_cycle_anchor": created,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": items[0]["price"]["currency"],
        "current_period_end": end,  # legacy mirror of the items' period (2023 contract)
        "current_period_start": start,
        "customer": customer,
        "default_tax_rates": [],
        "discounts": [],
        "ended_at": None,
        "items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sid}",
        },
        "livemode": False,
        "metadata": {},
        "start_date": created,
        "status": status,
        "trial_end": None,
        "trial_start": None,
    }


def make_invoice(world: World, sub: Obj, created: int, paid: bool, reason: str) -> Obj:
    amount = sum(
        int(i["price"].get("unit_amount") or 0) * int(i.get("quantity") or 0)
        for i in sub["items"]["data"]
    )
    iid = f"in_{len(world.stripe['invoices']) + 1:08d}"
    invoice = {
        "id": iid,
        "object": "invoice",
        "amount_due": amount,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "amount_shipping": 0,
        "attempt_count": 1,
        "attempted": True,
        "automatic_tax": {"enabled": False},
        "billing_reason": reason,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": sub["currency"],
        "customer": sub["customer"],
        "default_tax_rates": [],
        "lines": {"object": "list", "data": [], "has_more": False, "url": f"/v1/invoices/{iid}"},
        "livemode": False,
        "paid": paid,  # legacy (2023 contract); current code reads `status`
        "paid_out_of_band": False,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"metadata": {}, "subscription": sub["id"]},
        },
        "payment_settings": {"default_mandate": None, "payment_method_types": None},
        "period_end": created,
        "period_start": created - 30 * DAY,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "starting_balance": 0,
        "status": "paid" if paid else "open",
        "status_transitions": {"finalized_at": created, "marked_uncollectible_at": None,
                               "paid_at": created if paid else None, "voided_at": None},
        "subtotal": amount,
        "total": amount,
        "total_tax_amounts": [],
    }  # fmt: skip
    world.stripe["invoices"].append(invoice)
    sub["latest_invoice"] = iid
    return invoice
