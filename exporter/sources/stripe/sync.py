"""Keeps a local copy of Stripe's billing state: a full sync, then only the Events since.

Persisted in the StateStore so a restart resumes from the last event instead of re-listing:
  stripe.subscription  id -> slimmed subscription (what MRR and the metrics read)
  stripe.customer      id -> {created, account_id}
  stripe.price         id -> tiered price with its `tiers` (prices never change their amounts)
  stripe.discount      id -> discount {id, start, end, source.coupon: coupon id}
  stripe.coupon        id -> coupon with `applies_to` and `currency_options`
  stripe.meta          cursor {last_event, full_sync_at}, open_invoices, recent

Discounts and coupons. Stripe returns both as ids unless a request expands them, and event
payloads are never expanded. The full sync expands `data.discounts` and
`data.items.data.discounts` (four levels, Stripe's limit: an item discount's coupon cannot be
expanded from the listing), keeps each discount once by id and every subscription with ids
only. A discount id seen later (an event) and not known yet makes the sync re-list that
customer's subscriptions with the same expansions ("Discounts cannot be fetched by ID").
Every coupon id is retrieved once with `expand[]=applies_to&expand[]=currency_options` (a
coupon's terms never change after creation) and kept. Both survive restarts. What still cannot
be read (a deleted coupon) is left to MRR, which reports it rather than guess.
"""

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from exporter.config import StripeConfig
from exporter.sources.stripe.api import PAGE_SIZE, SOURCE, CursorExpiredError, Obj, StripeApi
from exporter.stats import UpstreamStats
from tensafe_ops.http import UpstreamError
from tensafe_ops.log import get_logger
from tensafe_ops.storage import StateStore

log = get_logger("tensafe_ops.exporter.stripe")

NS_SUBSCRIPTION = "stripe.subscription"
NS_CUSTOMER = "stripe.customer"
NS_PRICE = "stripe.price"
NS_META = "stripe.meta"
NS_DISCOUNT = "stripe.discount"
NS_COUPON = "stripe.coupon"

EVENT_TYPES = [
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
]
SUBSCRIPTION_EXPAND = ["data.discounts", "data.items.data.discounts"]
COUPON_EXPAND = ["applies_to", "currency_options"]
_COUPON_KEYS = ("id", "object", "percent_off", "amount_off", "currency", "currency_options",
                "duration", "duration_in_months", "applies_to")  # fmt: skip
RECENT_WINDOW = timedelta(hours=24)
_OLD_DISCOUNTS = "discounts"
"""stripe.meta key of the expanded discounts kept before the stripe.discount namespace."""

_SUB_KEYS = ("id", "customer", "status", "currency", "cancel_at_period_end", "cancel_at",
             "created", "default_tax_rates", "discounts", "trial_end",
             "pause_collection")  # fmt: skip
_ENUM_KEYS = ("status", "currency")
_ITEM_KEYS = ("id", "quantity", "discounts", "tax_rates", "current_period_end")
_PRICE_KEYS = ("id", "product", "currency", "recurring", "billing_scheme", "tiers_mode",
               "unit_amount", "unit_amount_decimal", "transform_quantity", "tiers")  # fmt: skip


def slim(subscription: Obj, shared_prices: dict[str, Obj] | None = None) -> Obj:
    """Only the fields MRR and the metrics read (keeps state and memory small), as plain
    dicts and tuples (the SDK parses into OrderedDicts, which are twice the size; most
    arrays are empty, and the empty tuple is a single shared object).

    With `shared_prices`, equal prices become one object (10,000 subscriptions use a few
    dozen prices); `_fetch_tiers` may later add `tiers` to it, the same for every user.
    """
    items = []
    for item in (subscription.get("items") or {}).get("data") or []:
        price = item.get("price") or {}
        slimmed = {k: _plain(item.get(k)) for k in _ITEM_KEYS}
        slimmed["discounts"] = discount_ids(item)
        slimmed["price"] = _share(
            {k: _plain(price[k]) for k in _PRICE_KEYS if k in price}, shared_prices
        )
        items.append(slimmed)
    result = {k: _plain(subscription.get(k)) for k in _SUB_KEYS}
    result["discounts"] = discount_ids(subscription)
    for key in _ENUM_KEYS:  # a handful of distinct values over 10,000 subscriptions
        if isinstance(result[key], str):
            result[key] = sys.intern(result[key])
    result["items"] = {"data": items}
    return result


def discount_ids(holder: Mapping[str, Any]) -> tuple[str, ...]:
    """A subscription's or item's discounts as ids (expanded or not, as Stripe sent them)."""
    return tuple(
        str(d.get("id")) if isinstance(d, Mapping) else str(d)
        for d in holder.get("discounts") or ()
    )


def expanded_discounts(subscription: Obj) -> dict[str, Obj]:
    """The discount objects an (expanded) subscription carries, at both levels, each kept as
    {id, object, start, end, source: {type, coupon: <coupon id>}}: coupons are kept apart."""
    holders = [subscription, *((subscription.get("items") or {}).get("data") or [])]
    found = {}
    for holder in holders:
        for discount in holder.get("discounts") or ():
            if not isinstance(discount, Mapping):
                continue
            coupon = (discount.get("source") or {}).get("coupon") or discount.get("coupon")
            coupon_id = coupon.get("id") if isinstance(coupon, Mapping) else coupon
            found[str(discount["id"])] = {
                "id": str(discount["id"]),
                "object": "discount",
                "start": discount.get("start"),
                "end": discount.get("end"),
                "source": {"type": "coupon", "coupon": coupon_id},
            }
    return found


def referenced_discounts(subscriptions: Iterable[Obj]) -> set[str]:
    """Every discount id the (slimmed) subscriptions name, at both levels."""
    return {
        did
        for sub in subscriptions
        for holder in (sub, *sub["items"]["data"])
        for did in holder.get("discounts") or ()
    }


def share_prices(subscriptions: Iterable[Obj], shared_prices: dict[str, Obj]) -> None:
    """Make equal prices of already slimmed subscriptions (e.g. restored ones) one object."""
    for subscription in subscriptions:
        for item in subscription["items"]["data"]:
            item["price"] = _share(item["price"], shared_prices)


def _share(price: Obj, shared_prices: dict[str, Obj] | None) -> Obj:
    if shared_prices is None or "id" not in price:
        return price
    known = shared_prices.get(price["id"])
    if known is not None and known == price:
        return known
    shared_prices[price["id"]] = price
    return price


def _plain(value: Any) -> Any:
    """A JSON value copied into plain dicts and tuples."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def _invoice_subscription(invoice: Obj) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription = details.get("subscription") or invoice.get("subscription")
    if isinstance(subscription, Mapping):
        subscription = subscription.get("id")
    return None if subscription is None else str(subscription)


def _finalized_at(invoice: Obj) -> float:
    transitions = invoice.get("status_transitions") or {}
    return float(transitions.get("finalized_at") or invoice["created"])


def _recent(event: Obj) -> Obj:
    """What the 24h counters need from an event."""
    obj = event["data"]["object"]
    previous = event["data"].get("previous_attributes") or {}
    converted = (
        event["type"] == "customer.subscription.updated"
        and previous.get("status") == "trialing"
        and obj.get("status") == "active"
    )
    customer = obj.get("customer") if obj.get("object") != "customer" else obj.get("id")
    return {
        "id": event["id"],
        "type": event["type"],
        "created": event["created"],
        "customer": customer,
        "trial_conversion": converted,
    }


@dataclass
class BillingState:
    subscriptions: dict[str, Obj] = field(default_factory=dict)
    customers: dict[str, Obj] = field(default_factory=dict)
    prices: dict[str, Obj] = field(default_factory=dict)
    open_invoices: dict[str, Obj] = field(default_factory=dict)
    """Unpaid invoices: id -> {subscription, finalized_at}; past-due grace counts from them."""
    discounts: dict[str, Obj] = field(default_factory=dict)
    """Discount objects by id (coupon as an id): subscriptions keep discount ids only."""
    coupons: dict[str, Obj] = field(default_factory=dict)
    """Coupons by id, retrieved with `applies_to` and `currency_options`."""
    recent: dict[str, Obj] = field(default_factory=dict)
    """Events of the last 24h (compact), for the 24h counters."""
    last_event: str | None = None
    full_sync_at: float | None = None
    shared_prices: dict[str, Obj] = field(default_factory=dict, repr=False, compare=False)
    """One slimmed price object per price id, shared by the subscriptions (not persisted)."""

    def copy(self) -> "BillingState":
        """A copy whose dicts later syncs do not change. Shallow is enough: a sync puts new
        objects into these dicts (a changed subscription is slimmed anew, a customer or an
        invoice rebuilt) and never edits one in place, except a tiered price getting its
        `tiers`, which is done before `StripeSync.refresh` returns (later syncs at most write
        the same values again)."""
        return replace(
            self,
            subscriptions=dict(self.subscriptions),
            customers=dict(self.customers),
            prices=dict(self.prices),
            open_invoices=dict(self.open_invoices),
            discounts=dict(self.discounts),
            coupons=dict(self.coupons),
            recent=dict(self.recent),
        )

    def overdue_since(self) -> dict[str, datetime]:
        """Subscription id -> finalisation of its oldest unpaid invoice."""
        oldest: dict[str, float] = {}
        for invoice in self.open_invoices.values():
            sub = invoice.get("subscription")
            if sub:
                oldest[sub] = min(oldest.get(sub, invoice["finalized_at"]), invoice["finalized_at"])
        return {sub: _utc(ts) for sub, ts in oldest.items()}


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class StripeSync:
    def __init__(self, cfg: StripeConfig, api: StripeApi, store: StateStore, stats: UpstreamStats):
        self.cfg = cfg
        self.api = api
        self.store = store
        self.stats = stats
        self.state: BillingState | None = None
        self.missing_coupons: set[str] = set()
        """Coupons Stripe no longer has (404): not asked for again until the next full sync."""

    async def refresh(self, now: datetime) -> BillingState:
        """Bring the local state up to date: load it, then full sync or apply new events."""
        if self.state is None:
            self.state = await self._load()
        state = self.state
        due = state.full_sync_at is None or (
            now.timestamp() - state.full_sync_at >= self.cfg.full_resync_interval
        )
        if due or state.last_event is None:
            self.state = await self._full_sync(now, state)
        else:
            try:
                await self._apply_events(state)
            except CursorExpiredError:
                log.warning("stripe_cursor_expired")
                self.state = await self._full_sync(now, state)
        self._prune(self.state, now)
        return self.state

    async def _full_sync(self, now: datetime, previous: BillingState) -> BillingState:
        """List everything again. Tiered prices and coupons carry over (they never change);
        the discounts are those the listing carries."""
        state = BillingState(
            prices=dict(previous.prices),
            coupons=dict(previous.coupons),
            full_sync_at=now.timestamp(),
        )
        self.missing_coupons.clear()
        newest = await self.api.call("events", {"limit": 1})
        newest_data = newest.get("data") or []
        # No event at all yet: "" makes the next refresh list the events created since now.
        state.last_event = str(newest_data[0]["id"]) if newest_data else ""
        self.stats.set_progress(SOURCE, 0, None)
        # Page by page: only the slimmed objects stay, never 10,000 raw ones at once.
        async for page in self.api.pages(
            "subscriptions", {"status": "all", "expand": SUBSCRIPTION_EXPAND}
        ):
            for subscription in page:
                state.discounts.update(expanded_discounts(subscription))
                state.subscriptions[subscription["id"]] = slim(subscription, state.shared_prices)
        self.stats.set_progress(SOURCE, 1, 4)
        log.info("stripe_sync_progress", step="subscriptions", count=len(state.subscriptions))
        async for page in self.api.pages("customers", {}):
            for customer in page:
                state.customers[customer["id"]] = self._customer(customer)
        self.stats.set_progress(SOURCE, 2, 4)
        log.info("stripe_sync_progress", step="customers", count=len(state.customers))
        for invoice in await self.api.list_all("invoices", {"status": "open"}):
            self._open_invoice(state, invoice)
        since = int((now - RECENT_WINDOW).timestamp())
        for event in await self.api.list_all(
            "events", {"created": {"gte": since}, "types": EVENT_TYPES}
        ):
            state.recent[event["id"]] = _recent(event)
        self.stats.set_progress(SOURCE, 3, 4)
        await self._fetch_tiers(state)
        await self._fetch_coupons(state)
        self.stats.set_progress(SOURCE, 4, 4)
        log.info("stripe_full_sync_done", subscriptions=len(state.subscriptions))
        await self._save_all(state)
        return state

    async def _apply_events(self, state: BillingState) -> None:
        if state.last_event:
            events = await self.api.events_after(state.last_event, EVENT_TYPES)
        else:  # nothing had happened at the full sync: take everything since then
            assert state.full_sync_at is not None
            created = {"gte": int(state.full_sync_at) - 1}
            listed = await self.api.list_all("events", {"created": created, "types": EVENT_TYPES})
            events = list(reversed(listed))
        changed_subs: dict[str, Obj] = {}
        changed_customers: dict[str, Obj] = {}
        deleted_customers: list[str] = []
        new_discounts: dict[str, Obj] = {}
        refetch: set[str] = set()
        for event in events:
            obj, kind = event["data"]["object"], event["type"]
            state.recent[event["id"]] = _recent(event)
            if kind.startswith("customer.subscription."):
                slimmed = slim(obj, state.shared_prices)
                if referenced_discounts([slimmed]) - state.discounts.keys():
                    refetch.add(str(obj["customer"]))
                changed_subs[obj["id"]] = state.subscriptions[obj["id"]] = slimmed
            elif kind in ("customer.created", "customer.updated"):
                changed_customers[obj["id"]] = state.customers[obj["id"]] = self._customer(obj)
            elif kind == "customer.deleted":
                state.customers.pop(obj["id"], None)
                deleted_customers.append(obj["id"])
            elif kind == "invoice.payment_failed":
                self._open_invoice(state, obj)
            elif kind.startswith("invoice."):
                state.open_invoices.pop(obj["id"], None)
        # Discounts cannot be fetched by id: list the customer's subscriptions expanded.
        for customer in sorted(refetch):
            for subscription in await self.api.list_all(
                "subscriptions",
                {"customer": customer, "status": "all", "expand": SUBSCRIPTION_EXPAND},
            ):
                new_discounts.update(expanded_discounts(subscription))
                changed_subs[subscription["id"]] = slim(subscription, state.shared_prices)
                state.subscriptions[subscription["id"]] = changed_subs[subscription["id"]]
        state.discounts.update(new_discounts)
        if events:
            state.last_event = str(events[-1]["id"])
        new_prices = await self._fetch_tiers(state)
        new_coupons = await self._fetch_coupons(state)
        await self.store.put_many(NS_SUBSCRIPTION, changed_subs)
        await self.store.put_many(NS_CUSTOMER, changed_customers)
        await self.store.delete_many(NS_CUSTOMER, deleted_customers)
        await self.store.put_many(NS_PRICE, new_prices)
        await self.store.put_many(NS_DISCOUNT, new_discounts)
        await self.store.put_many(NS_COUPON, new_coupons)
        await self._save_meta(state)
        log.debug("stripe_events_applied", events=len(events), subscriptions=len(changed_subs))

    def _customer(self, customer: Obj) -> Obj:
        account = (customer.get("metadata") or {}).get(self.cfg.account_key)
        return {"created": customer.get("created"), "account_id": account or None}

    @staticmethod
    def _open_invoice(state: BillingState, invoice: Obj) -> None:
        if invoice.get("status") not in (None, "open"):
            return
        state.open_invoices[invoice["id"]] = {
            "subscription": _invoice_subscription(invoice),
            "finalized_at": _finalized_at(invoice),
        }

    async def _fetch_coupons(self, state: BillingState) -> dict[str, Obj]:
        """Retrieve each coupon the discounts name and that is not known yet, once: with
        `applies_to` and `currency_options`, which a coupon carries only when expanded."""
        wanted = {
            str(coupon)
            for discount in state.discounts.values()
            if (coupon := discount["source"].get("coupon"))
        }
        fetched: dict[str, Obj] = {}
        for coupon_id in sorted(wanted - state.coupons.keys() - self.missing_coupons):
            try:
                coupon = await self.api.call("coupons", {"expand": COUPON_EXPAND}, coupon_id)
            except UpstreamError as exc:
                if exc.status != 404:
                    raise
                self.missing_coupons.add(coupon_id)  # deleted: its discounts stay unresolved
                log.warning("stripe_coupon_missing", coupon=coupon_id)
                continue
            state.coupons[coupon_id] = fetched[coupon_id] = {
                k: _plain(coupon.get(k)) for k in _COUPON_KEYS
            }
        return fetched

    async def _fetch_tiers(self, state: BillingState) -> dict[str, Obj]:
        """Tiered prices need their `tiers` (only returned by retrieving the price with expand)."""
        fetched: dict[str, Obj] = {}
        for subscription in state.subscriptions.values():
            for item in subscription["items"]["data"]:
                price = item["price"]
                if price.get("billing_scheme") != "tiered" or price.get("tiers"):
                    continue
                if price["id"] not in state.prices:
                    full = await self.api.call("prices", {"expand": ["tiers"]}, price["id"])
                    state.prices[price["id"]] = fetched[price["id"]] = {
                        "tiers": full.get("tiers"),
                        "tiers_mode": full.get("tiers_mode"),
                    }
                price.update(state.prices[price["id"]])
        return fetched

    def _prune(self, state: BillingState, now: datetime) -> None:
        horizon = (now - RECENT_WINDOW).timestamp()
        state.recent = {k: v for k, v in state.recent.items() if v["created"] >= horizon}

    async def _save_all(self, state: BillingState) -> None:
        await self.store.replace_namespace(NS_SUBSCRIPTION, state.subscriptions)
        await self.store.replace_namespace(NS_CUSTOMER, state.customers)
        await self.store.replace_namespace(NS_PRICE, state.prices)
        await self.store.replace_namespace(NS_DISCOUNT, state.discounts)
        await self.store.replace_namespace(NS_COUPON, state.coupons)
        await self.store.delete_many(NS_META, [_OLD_DISCOUNTS])
        await self._save_meta(state)

    async def _save_meta(self, state: BillingState) -> None:
        await self.store.put_many(
            NS_META,
            {
                "cursor": {"last_event": state.last_event, "full_sync_at": state.full_sync_at},
                "open_invoices": state.open_invoices,
                "recent": state.recent,
            },
        )

    async def _load(self) -> BillingState:
        meta = await self.store.get_all(NS_META)
        cursor = meta.get("cursor") or {}
        if not cursor.get("full_sync_at") or _OLD_DISCOUNTS in meta:
            return BillingState()  # nothing yet, or kept by a version before the discount cache
        state = BillingState(
            subscriptions=await self.store.get_all(NS_SUBSCRIPTION),
            customers=await self.store.get_all(NS_CUSTOMER),
            prices=await self.store.get_all(NS_PRICE),
            open_invoices=meta.get("open_invoices") or {},
            discounts=await self.store.get_all(NS_DISCOUNT),
            coupons=await self.store.get_all(NS_COUPON),
            recent=meta.get("recent") or {},
            last_event=cursor.get("last_event"),
            full_sync_at=cursor.get("full_sync_at"),
        )
        share_prices(state.subscriptions.values(), state.shared_prices)
        log.info("stripe_state_restored", subscriptions=len(state.subscriptions))
        return state


__all__ = ["PAGE_SIZE", "BillingState", "StripeSync", "share_prices", "slim"]
