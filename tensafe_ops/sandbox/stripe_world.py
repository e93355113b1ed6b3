"""Stripe part of the simulated world: generation and changes over time, with Events.

`world.stripe` holds lists of Stripe objects (current API shape, built by stripe_objects.py):
products, prices (with `tiers`), coupons (some restricted with `applies_to`), customers,
subscriptions (discounts expanded at subscription and item level, coupons inside
`source.coupon`; a few with `pause_collection`), invoices and events. The fake (stripe_api.py)
renders them as Stripe would: ids unless a request expands them (stripe_expand.py).
"""

import copy
import random
from datetime import datetime, timedelta
from typing import Any

from tensafe_ops.sandbox.stripe_objects import (
    DAY,
    Obj,
    catalog,
    coupons,
    make_customer,
    make_discount,
    make_invoice,
    make_item,
    make_subscription,
    period_end,
    product_coupons,
)
from tensafe_ops.sandbox.world import World, WorldSize

EVENT_RETENTION = timedelta(days=30)


STATUS_WEIGHTS = {
    "active": 74,
    "past_due": 6,
    "trialing": 7,
    "canceled": 7,
    "incomplete": 2,
    "unpaid": 2,
    "paused": 2,
}

TIER_PRICES = {
    "starter": ("price_starter_monthly", "price_starter_yearly", "price_starter_weekly"),
    "pro": (
        "price_pro_monthly",
        "price_pro_monthly_eur",
        "price_pro_quarterly",
        "price_pro_yearly",
    ),
    "enterprise": (
        "price_enterprise_graduated",
        "price_enterprise_volume",
        "price_enterprise_jpy",
    ),
}


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


def generate(world: World, rng: random.Random, size: WorldSize) -> None:
    """Customers for most accounts (two without account_id, one duplicate) and subscriptions."""
    products, prices = catalog()
    by_id = {p["id"]: p for p in prices}
    coupon_list = coupons()
    restricted = {c["id"]: c for c in product_coupons()}
    stripe: dict[str, list[Obj]] = {
        "products": products,
        "prices": prices,
        "coupons": coupon_list + list(restricted.values()),
        "customers": [],
        "subscriptions": [],
        "invoices": [],
        "events": [],
    }
    world.stripe = stripe
    now = _ts(world.now)
    accounts = world.accounts[: size.subscriptions]
    for index, account in enumerate(accounts):
        created = max(_ts(account.created_at), now - 800 * DAY)
        account_id: str | None = account.id
        if index in (3, 7):  # a customer created by hand, without the account id
            account_id = None
        cid = f"cus_{index + 1:06d}"
        stripe["customers"].append(make_customer(cid, created, account_id, account.name))
        status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
        price = by_id[rng.choice(TIER_PRICES[account.tier])]
        quantity = account.seats
        start = now - rng.randint(0, 25) * DAY
        end = period_end(start, price)
        sid = f"sub_{index + 1:06d}"
        items = [make_item(sid, 0, price, quantity, start, end)]
        if account.tier != "starter" and rng.random() < 0.3 and price["currency"] == "usd":
            addon = by_id["price_sso_daily" if rng.random() < 0.2 else "price_sso_monthly"]
            items.append(make_item(sid, 1, addon, 1, start, period_end(start, addon)))
        if account.tier == "enterprise" and price["currency"] == "usd":
            items.append(make_item(sid, 2, by_id["price_gpu_metered"], 1, start, end))
        sub = make_subscription(sid, cid, items, status, created)
        if rng.random() < 0.12 and price["currency"] == "usd":
            coupon = rng.choice(coupon_list)
            discount = make_discount(f"di_{index + 1:06d}", coupon, cid, sid, now - 40 * DAY)
            sub["discounts"] = [discount]
        _by_position(sub, index, restricted, now)
        if status == "canceled":
            sub["canceled_at"] = sub["ended_at"] = now - rng.randint(1, 60) * DAY
        elif status == "trialing":
            sub["trial_start"], sub["trial_end"] = now - 5 * DAY, now + rng.randint(1, 9) * DAY
        elif rng.random() < 0.05:
            sub["cancel_at_period_end"] = True
        stripe["subscriptions"].append(sub)
        if status in ("active", "past_due", "unpaid"):
            make_invoice(world, sub, start, True, "subscription_cycle")
        if status in ("past_due", "unpaid"):
            overdue = rng.choice((2, 10, 20, 45)) if status == "past_due" else 60
            invoice = make_invoice(world, sub, now - overdue * DAY, False, "subscription_cycle")
            invoice["attempt_count"] = rng.randint(1, 4)
    if len(stripe["customers"]) > 12:  # one account with two Stripe customers
        twin = stripe["customers"][11]
        twin["metadata"] = dict(stripe["customers"][10]["metadata"])


def _by_position(sub: Obj, index: int, coupons: dict[str, Obj], now: int) -> None:
    """Item-level discounts whose coupons are restricted to products, and a few paused
    collections (chosen by the subscription's position, not the RNG, so the rest of the world
    stays as it was)."""
    if sub["status"] == "active" and index % 41 == 20:
        resumes = None if index % 2 else now + 14 * DAY
        sub["pause_collection"] = {"behavior": "keep_as_draft", "resumes_at": resumes}
    cid, sid = sub["customer"], sub["id"]
    for number, item in enumerate(sub["items"]["data"]):
        product = item["price"]["product"]
        if product == "sso_addon" and index % 3 == 0:
            coupon = coupons["SSO_HALF"]
        elif product == "pro" and item["price"]["currency"] == "usd" and index % 11 == 4:
            coupon = coupons["PRO10USD"]
        else:
            continue
        did = f"di_{index + 1:06d}_{number}"
        item["discounts"] = [make_discount(did, coupon, cid, sid, now - 20 * DAY, item["id"])]


def add_item_discount(world: World, sub: Obj, item: Obj, coupon: Obj, at: int) -> Obj:
    """Put a discount on one item of `sub` at `at`, with its customer.subscription.updated
    event (whose payload, like Stripe's, names the discount by id only)."""
    before = _copy(sub["items"])
    did = f"di_{sub['id'].removeprefix('sub_')}_{len(item['discounts']) + 1}_{at}"
    discount = make_discount(did, coupon, sub["customer"], sub["id"], at, item["id"])
    item["discounts"] = [*item["discounts"], discount]
    _touched(world, sub, at, {"items": before})
    return discount


def _event(world: World, kind: str, obj: Obj, at: int, previous: Obj | None = None) -> None:
    events = world.stripe["events"]
    number = int(events[-1]["id"].removeprefix("evt_")) + 1 if events else 1
    data: Obj = {"object": _copy(obj)}
    if previous is not None:
        data["previous_attributes"] = previous
    events.append(
        {
            "id": f"evt_{number:010d}",
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": at,
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
    )


def _copy(obj: Obj) -> Obj:
    return copy.deepcopy(obj)


def advance(world: World, rng: random.Random, previous: datetime) -> None:
    """Changes between `previous` and `world.now`, each with its Event.

    About one change per 20 subscriptions per hour (at least one per call): new subscriptions,
    seat changes, plan changes, cancellations, failing and recovering payments, trial conversions.
    """
    stripe = world.stripe
    if not stripe.get("subscriptions"):
        return
    start, end = _ts(previous), _ts(world.now)
    hours = (end - start) / 3600
    changes = max(1, min(1000, round(len(stripe["subscriptions"]) / 20 * hours)))
    moments = sorted(rng.randint(start + 1, end) for _ in range(changes))
    for at in moments:
        _one_change(world, rng, at)
    horizon = end - int(EVENT_RETENTION.total_seconds())
    stripe["events"] = [e for e in stripe["events"] if e["created"] >= horizon]


def _one_change(world: World, rng: random.Random, at: int) -> None:
    subs = world.stripe["subscriptions"]
    by_status: dict[str, list[Obj]] = {}
    for sub in subs:
        by_status.setdefault(sub["status"], []).append(sub)
    kind = rng.choices(
        ("new", "quantity", "plan", "cancel", "fail", "recover", "convert"),
        weights=(2, 4, 1, 1, 2, 1, 1),
    )[0]
    active, past_due, trialing = (by_status.get(s, []) for s in ("active", "past_due", "trialing"))
    if kind == "new" or not active:
        _new_subscription(world, rng, at)
    elif kind == "quantity":
        sub = rng.choice(active)
        item = sub["items"]["data"][0]
        before = item["quantity"]
        item["quantity"] = max(1, before + rng.choice((-3, -1, 1, 2, 5)))
        _touched(world, sub, at, {"items": _items_snapshot(sub, 0, quantity=before)})
    elif kind == "plan":
        sub = rng.choice(active)
        item = sub["items"]["data"][0]
        old = item["price"]
        choices = [p for p in world.stripe["prices"] if p["currency"] == old["currency"]
                   and p["recurring"]["usage_type"] == "licensed" and p["id"] != old["id"]
                   and p["product"] in ("starter", "pro", "enterprise")]  # fmt: skip
        if choices:
            item["price"] = rng.choice(choices)
            _touched(world, sub, at, {"items": _items_snapshot(sub, 0, price=old)})
    elif kind == "cancel":
        sub = rng.choice(active)
        sub["status"], sub["canceled_at"], sub["ended_at"] = "canceled", at, at
        _event(world, "customer.subscription.deleted", sub, at)
    elif kind == "fail":
        sub = rng.choice(active)
        invoice = make_invoice(world, sub, at, False, "subscription_cycle")
        _event(world, "invoice.payment_failed", invoice, at)
        sub["status"] = "past_due"
        _touched(world, sub, at, {"status": "active", "latest_invoice": None})
    elif kind == "recover" and past_due:
        sub = rng.choice(past_due)
        for invoice in world.stripe["invoices"]:
            if invoice["id"] == sub.get("latest_invoice") and invoice["status"] == "open":
                invoice.update(status="paid", paid=True, amount_paid=invoice["amount_due"])
                invoice.update(amount_remaining=0, attempt_count=invoice["attempt_count"] + 1)
                invoice["status_transitions"]["paid_at"] = at
                _event(world, "invoice.paid", invoice, at)
        sub["status"] = "active"
        _touched(world, sub, at, {"status": "past_due"})
    elif kind == "convert" and trialing:
        sub = rng.choice(trialing)
        sub["status"], sub["trial_end"] = "active", at
        _event(world, "invoice.paid", make_invoice(world, sub, at, True, "subscription_cycle"), at)
        _touched(world, sub, at, {"status": "trialing", "trial_end": at + DAY})


def _items_snapshot(sub: Obj, index: int, **old: Any) -> Obj:
    items = _copy(sub["items"])
    items["data"][index].update(old)
    return items


def _touched(world: World, sub: Obj, at: int, previous: Obj) -> None:
    _event(world, "customer.subscription.updated", sub, at, previous)


def _new_subscription(world: World, rng: random.Random, at: int) -> None:
    stripe = world.stripe
    customers = stripe["customers"]
    with_subscription = {s["customer"] for s in stripe["subscriptions"]}
    account = rng.choice(world.accounts)
    cid = f"cus_{len(customers) + 1:06d}"
    claimed = {c["metadata"].get("account_id") for c in customers}
    if account.id not in claimed:
        customer = make_customer(cid, at, account.id, account.name)
        customers.append(customer)
        _event(world, "customer.created", customer, at)
    else:  # the account comes back (a reactivation) or adds a subscription
        customer = next(c for c in customers if c["metadata"].get("account_id") == account.id)
        cid = customer["id"]
    price = next(p for p in stripe["prices"] if p["id"] == TIER_PRICES[account.tier][0])
    sid = f"sub_{len(stripe['subscriptions']) + 1:06d}"
    item = make_item(sid, 0, price, max(1, account.seats), at, period_end(at, price))
    sub = make_subscription(sid, cid, [item], "active", at)
    if cid not in with_subscription and rng.random() < 0.3:
        sub["status"], sub["trial_start"], sub["trial_end"] = "trialing", at, at + 14 * DAY
    stripe["subscriptions"].append(sub)
    if sub["status"] == "active":
        _event(world, "invoice.paid", make_invoice(world, sub, at, True, "subscription_create"), at)
    _event(world, "customer.subscription.created", sub, at)
