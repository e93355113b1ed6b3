"""The Stripe source against the fake Stripe API, over HTTP, with the real stripe-python SDK."""

import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from structlog.testing import capture_logs

from exporter.config import MrrRules, StripeConfig
from exporter.snapshot import render
from exporter.sources import stripe as stripe_source
from exporter.sources.base import SourceContext, SourceResult
from exporter.sources.stripe import DayBaseline, StripeSource, create
from exporter.stats import UpstreamStats
from tensafe_ops.http import UpstreamError
from tensafe_ops.sandbox import stripe_api, stripe_world
from tensafe_ops.sandbox import stripe_objects as sw
from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.world import World, WorldSize, advance, generate
from tensafe_ops.storage import StateStore, create_engine, migrate
from tests.contracts import ContractRecorder
from tests.exporter.offloop import OffLoopSpy

KEY = "sk_test_source_4242"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
DAY = 86400
RULES = MrrRules(fx_rates={"eur": 1.10})

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
ServeFn = Callable[..., Awaitable["Served"]]


@dataclass
class Served:
    url: str
    faults: Faults
    recorder: ContractRecorder
    hits: Counter[str]
    """Requests served, by path."""


def samples(result: SourceResult) -> Samples:
    text = render(result.families)[0].decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(values: Samples, name: str, **labels: str) -> float:
    return values[(name, tuple(sorted(labels.items())))]


@pytest.fixture
async def serve(aiohttp_server: Any) -> ServeFn:
    async def start(world: World, faults: Faults | None = None) -> Served:
        faults = faults or Faults(retry_after=0)
        app = stripe_api.make_app(world, faults, credentials={"api_key": KEY})
        # /v1/prices/{id} and /v1/coupons/{id} (a tiered price's tiers, a coupon's applies_to)
        # are not in the trimmed contract
        recorder = ContractRecorder("stripe", skip_paths=("/v1/prices/", "/v1/coupons/"))
        recorder.attach(app)
        hits: Counter[str] = Counter()

        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            hits[request.path] += 1
            response: web.StreamResponse = await handler(request)
            return response

        app.middlewares.append(count)
        server: TestServer = await aiohttp_server(app)
        return Served(str(server.make_url("")).rstrip("/"), faults, recorder, hits)

    return start


@pytest.fixture
async def store(tmp_path: Any) -> AsyncIterator[StateStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    await migrate(engine)
    yield StateStore(engine)
    await engine.dispose()


class NoFacts:
    def facts(self, source: str) -> Mapping[str, Any] | None:
        return None


def make_source(
    url: str, store: StateStore, *, key: str = KEY, **cfg: Any
) -> tuple[StripeSource, UpstreamStats]:
    stats = UpstreamStats()
    config = StripeConfig(base_url=url, api_key=SecretStr(key), mrr=RULES, **cfg)
    context = SourceContext(state=store, stats=stats, clock=lambda: NOW, facts=NoFacts())
    return create(config, context), stats


def hand_world() -> World:
    """Seven customers whose MRR is worked out by hand in the test below."""
    world = World(now=NOW)
    products, prices = sw.catalog()
    price = {p["id"]: p for p in prices}
    coupon = {c["id"]: c for c in sw.coupons()}
    world.stripe = {"products": products, "prices": prices, "coupons": list(coupon.values()),
                    "customers": [], "subscriptions": [], "invoices": [], "events": []}  # fmt: skip

    def add(
        cid: str, account: str | None, lines: list[tuple[str, int]], status: str = "active"
    ) -> Any:
        world.stripe["customers"].append(sw.make_customer(cid, TS - 90 * DAY, account, cid))
        sid = cid.replace("cus", "sub")
        items = [
            sw.make_item(sid, n, price[p], q, TS - 5 * DAY, TS + 25 * DAY)
            for n, (p, q) in enumerate(lines)
        ]
        sub = sw.make_subscription(sid, cid, items, status, TS - 90 * DAY)
        world.stripe["subscriptions"].append(sub)
        return sub

    a = add("cus_a", "acct_1", [("price_pro_monthly", 3)])
    a["discounts"] = [sw.make_discount("di_a", coupon["LAUNCH20"], "cus_a", "sub_a", TS - DAY)]
    add("cus_b", "acct_2", [("price_enterprise_graduated", 60), ("price_gpu_metered", 1)])
    add("cus_c", "acct_3", [("price_pro_monthly_eur", 2)])
    add("cus_d", "acct_3", [("price_starter_yearly", 1)])  # a second customer for acct_3
    add("cus_e", None, [("price_pro_monthly", 1)], status="trialing")
    f = add("cus_f", "acct_4", [("price_starter_monthly", 2)], status="past_due")
    sw.make_invoice(world, f, TS - 40 * DAY, False, "subscription_cycle")
    add("cus_g", "acct_5", [("price_enterprise_jpy", 10)])
    return world


async def test_full_sync_matches_hand_computed_mrr(serve: ServeFn, store: StateStore) -> None:
    served = await serve(hand_world())
    source, stats = make_source(served.url, store, enterprise_mrr_threshold=4000)
    result = await source.refresh(NOW)
    values = samples(result)
    # cus_a: 3 x $99 = 297, 20% off forever -> 237.60
    # cus_b: graduated 50 x $80 + 10 x $60 = 4600 (metered GPU item excluded)
    # cus_d: $290 / year -> 24.1667;  cus_e trialing, cus_f past due 40 days: excluded
    assert value(values, "tensafe_stripe_mrr", currency="usd") == pytest.approx(4861.7667, abs=1e-3)
    assert value(values, "tensafe_stripe_mrr", currency="eur") == pytest.approx(180.0)  # 2 x 90
    assert value(values, "tensafe_stripe_mrr", currency="jpy") == 90000.0  # 10 x 9000 yen
    # converted: 4861.7667 + 180 x 1.10 = 5059.7667; JPY has no rate and stays apart
    assert value(values, "tensafe_stripe_mrr_converted", currency="usd") == pytest.approx(
        5059.7667, abs=1e-3
    )
    assert value(values, "tensafe_stripe_mrr_unconverted", currency="jpy") == 90000.0
    assert value(values, "tensafe_stripe_mrr_by_plan", plan="enterprise") == pytest.approx(4600)
    assert value(values, "tensafe_stripe_mrr_by_plan", plan="pro") == pytest.approx(237.6 + 198)
    assert value(values, "tensafe_stripe_subscriptions", status="past_due") == 1
    assert value(values, "tensafe_stripe_subscriptions", status="trialing") == 1
    assert value(values, "tensafe_stripe_paying_customers") == 5  # a, b, c, d, g
    assert value(values, "tensafe_stripe_enterprise_customers") == 1  # only cus_b >= 4000
    assert value(values, "tensafe_account_join_issues", source="stripe", issue="missing_id") == 1
    assert value(values, "tensafe_account_join_issues", source="stripe", issue="duplicate_id") == 1
    assert result.facts["acct_3"]["mrr"] == pytest.approx(198 + 24.1667, abs=1e-3)
    assert result.facts["acct_4"] == {
        "mrr": 0.0,
        "past_due": True,
        "payment_failed_24h": False,
        "plan": None,
        "enterprise": False,
    }
    assert result.facts["acct_2"]["plan"] == "enterprise" and result.facts["acct_2"]["enterprise"]
    assert stats.requests[("stripe", "200")] >= 6
    assert served.recorder.check() == 5  # events, subscriptions, customers, invoices, events
    await source.aclose()


def discount_world() -> World:
    """Discounts as Stripe keeps them: on items and subscriptions, restricted to products,
    with inclusive tax; plus a three-decimal currency and a paused collection."""
    world = World(now=NOW)
    products, prices = sw.catalog()
    prices.append(sw._price("price_pro_kwd", "pro", 25000, currency="kwd"))
    price = {p["id"]: p for p in prices}
    base = {"object": "coupon", "created": TS - 99 * DAY, "valid": True, "currency": None,
            "amount_off": None, "percent_off": None, "duration": "forever"}  # fmt: skip
    coupons = {c["id"]: c for c in [*sw.coupons(), *sw.product_coupons()]}
    coupons["TWENTY"] = {**base, "id": "TWENTY", "amount_off": 2000, "currency": "usd"}
    coupons["NEWCO"] = {**base, "id": "NEWCO", "percent_off": 10.0}
    world.stripe = {"products": products, "prices": prices, "coupons": list(coupons.values()),
                    "customers": [], "subscriptions": [], "invoices": [], "events": []}  # fmt: skip

    def add(cid: str, lines: list[tuple[str, int]], **extra: Any) -> Any:
        world.stripe["customers"].append(sw.make_customer(cid, TS - 90 * DAY, f"acct_{cid}", cid))
        sid = cid.replace("cus", "sub")
        items = [
            sw.make_item(sid, n, price[p], q, TS - 5 * DAY, TS + 25 * DAY)
            for n, (p, q) in enumerate(lines)
        ]
        sub = sw.make_subscription(sid, cid, items, "active", TS - 90 * DAY) | extra
        world.stripe["subscriptions"].append(sub)
        return sub

    def discount(sub: Any, coupon: str, item: int | None = None) -> None:
        holder = sub if item is None else sub["items"]["data"][item]
        did = f"di_{sub['id']}_{coupon}"
        item_id = None if item is None else holder["id"]
        made = sw.make_discount(did, coupons[coupon], sub["customer"], sub["id"], TS - DAY, item_id)
        holder["discounts"].append(made)

    # pro 2 x $99 = 198 - $10 (PRO10USD: pro only) = 188; SSO $200 - 50% (item) = 100 -> 288
    a = add("cus_a", [("price_pro_monthly", 2), ("price_sso_monthly", 1)])
    discount(a, "PRO10USD")
    discount(a, "SSO_HALF", item=1)
    b = add("cus_b", [("price_pro_monthly", 1)])  # $99 - 20% (item) = 79.20
    discount(b, "LAUNCH20", item=0)
    add("cus_c", [("price_pro_kwd", 2)], currency="kwd")  # 2 x 25.000 KWD = 50 KWD
    add("cus_d", [("price_pro_monthly", 5)], pause_collection={"behavior": "void"})  # paused
    # $120 incl. 20% VAT with $20 off: (120 - 20) / 1.2 = 83.33
    e = add("cus_e", [("price_starter_monthly", 1)])
    vat_price = {"id": "price_vat", "unit_amount": 12000, "unit_amount_decimal": "12000"}
    e["items"]["data"][0]["price"] = price["price_starter_monthly"] | vat_price
    e["items"]["data"][0]["tax_rates"] = [
        {"id": "txr_vat", "object": "tax_rate", "active": True, "created": TS - 99 * DAY,
         "display_name": "VAT", "livemode": False, "percentage": 20.0, "inclusive": True}
    ]  # fmt: skip
    discount(e, "TWENTY")
    return world


def usd(values: Samples) -> float:
    return value(values, "tensafe_stripe_mrr", currency="usd")


def coupon_hits(served: Served) -> dict[str, int]:
    return {k.removeprefix("/v1/coupons/"): v for k, v in served.hits.items() if "/coupons/" in k}


async def test_discounts_as_stripe_sends_them_resolved_once_and_across_restarts(
    serve: ServeFn, store: StateStore, tmp_path: Any
) -> None:
    world = discount_world()
    served = await serve(world)
    source, _ = make_source(served.url, store)
    values = samples(await source.refresh(NOW))
    assert usd(values) == pytest.approx(288 + 79.2 + 83.3333, abs=1e-3)
    assert value(values, "tensafe_stripe_mrr", currency="kwd") == pytest.approx(50.0)
    assert value(values, "tensafe_stripe_unresolved_discounts") == 0
    assert coupon_hits(served) == {"LAUNCH20": 1, "PRO10USD": 1, "SSO_HALF": 1, "TWENTY": 1}
    subs = {s["id"]: s for s in world.stripe["subscriptions"]}

    # A metadata-only update: the event names both discounts of sub_a by id only. MRR must
    # not rise by them, and nothing is fetched again.
    listed = served.hits["/v1/subscriptions"]
    subs["sub_a"]["metadata"] = {"note": "renamed"}
    stripe_world._touched(world, subs["sub_a"], TS + 60, {"metadata": {}})
    values = samples(await source.refresh(NOW + timedelta(minutes=2)))
    assert usd(values) == pytest.approx(288 + 79.2 + 83.3333, abs=1e-3)
    assert served.hits["/v1/subscriptions"] == listed and sum(coupon_hits(served).values()) == 4

    # A new item discount (an unknown id, a known coupon): the customer's subscriptions are
    # listed again expanded; the coupon is not fetched again. cus_b: 79.20 - 20 = 59.20
    coupons = {c["id"]: c for c in world.stripe["coupons"]}
    b_item = subs["sub_b"]["items"]["data"][0]
    stripe_world.add_item_discount(world, subs["sub_b"], b_item, coupons["TWENTY"], TS + 120)
    values = samples(await source.refresh(NOW + timedelta(minutes=3)))
    assert usd(values) == pytest.approx(288 + 59.2 + 83.3333, abs=1e-3)
    assert served.hits["/v1/subscriptions"] == listed + 1
    assert sum(coupon_hits(served).values()) == 4
    await source.aclose()

    # Restarted: discounts and coupons come from the state DB; only the new coupon is fetched.
    # sub_a pro: 198 - 10% = 178.20, then PRO10USD: 168.20; + SSO 100 -> 268.20
    a_item = subs["sub_a"]["items"]["data"][0]
    stripe_world.add_item_discount(world, subs["sub_a"], a_item, coupons["NEWCO"], TS + 180)
    restarted, _ = make_source(served.url, store)
    values = samples(await restarted.refresh(NOW + timedelta(minutes=4)))
    assert usd(values) == pytest.approx(268.2 + 59.2 + 83.3333, abs=1e-3)
    assert coupon_hits(served) == {
        "LAUNCH20": 1, "PRO10USD": 1, "SSO_HALF": 1, "TWENTY": 1, "NEWCO": 1,
    }  # fmt: skip
    await restarted.aclose()
    other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    await migrate(other)
    fresh = await fresh_values(served.url, StateStore(other), NOW + timedelta(minutes=4))
    assert billing(values) == pytest.approx(billing(fresh))
    await other.dispose()
    served.recorder.check()


async def test_unreadable_discount_is_counted_and_logged_once_never_guessed(
    serve: ServeFn, store: StateStore
) -> None:
    world = discount_world()
    gone = world.stripe["subscriptions"][1]  # sub_b: its item discount's coupon is deleted
    gone["items"]["data"][0]["discounts"][0]["source"]["coupon"] = "DELETED"
    served = await serve(world)
    source, _ = make_source(served.url, store)
    with capture_logs() as logs:
        values = samples(await source.refresh(NOW))
        again = samples(await source.refresh(NOW + timedelta(minutes=1)))
    # sub_b counts before its discount ($99, an upper bound), and says so
    assert usd(values) == pytest.approx(288 + 99 + 83.3333, abs=1e-3)
    for seen in (values, again):
        assert value(seen, "tensafe_stripe_unresolved_discounts") == 1
        assert value(seen, "tensafe_stripe_unresolved_discount_mrr") == pytest.approx(99.0)
    unresolved = [e for e in logs if e["event"] == "stripe_discount_unresolved"]
    assert [(e["discount"], e["subscription"]) for e in unresolved] == [
        ("di_sub_b_LAUNCH20", "sub_b")
    ]
    assert [e["coupon"] for e in logs if e["event"] == "stripe_coupon_missing"] == ["DELETED"]
    assert coupon_hits(served)["DELETED"] == 1  # not asked again until the next full sync
    await source.aclose()


def small_world() -> World:
    return generate(11, WorldSize(accounts=120, tickets=0, subscriptions=120, incidents=0), NOW)


COMPARED = (
    "tensafe_stripe_mrr",
    "tensafe_stripe_mrr_converted",
    "tensafe_stripe_mrr_by_plan",
    "tensafe_stripe_subscriptions",
    "tensafe_stripe_paying_customers",
    "tensafe_stripe_past_due_subscriptions",
    "tensafe_stripe_failed_payments_24h",
    "tensafe_stripe_new_customers_24h",
    "tensafe_stripe_trial_conversions_24h",
    "tensafe_stripe_churned_customers_24h",
)
"""Families an events-synced source and a fresh full sync must agree on."""


def billing(values: Samples) -> Samples:
    return {k: v for k, v in values.items() if k[0] in COMPARED}


async def fresh_values(url: str, tmp_store: StateStore, now: datetime) -> Samples:
    source, _ = make_source(url, tmp_store)
    try:
        return samples(await source.refresh(now))
    finally:
        await source.aclose()


async def test_mrr_and_report_run_off_the_event_loop_on_their_own_copy(
    serve: ServeFn, store: StateStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = small_world()
    served = await serve(world)
    source, _ = make_source(served.url, store)

    def sync_meanwhile() -> None:  # what a later sync may do to the state it keeps
        state = source.sync.state
        assert state is not None
        for held in (state.subscriptions, state.customers, state.open_invoices, state.recent):
            held.clear()

    summary = OffLoopSpy(stripe_source.mrr_summary, meanwhile=sync_meanwhile)
    day = OffLoopSpy(stripe_source.next_day)
    report = OffLoopSpy(stripe_source.build_report)
    monkeypatch.setattr(stripe_source, "mrr_summary", summary)
    monkeypatch.setattr(stripe_source, "next_day", day)
    monkeypatch.setattr(stripe_source, "build_report", report)
    values = samples(await source.refresh(NOW))
    assert summary.ran_off_loop and day.ran_off_loop and report.ran_off_loop
    assert source.sync.state is not None and source.sync.state.subscriptions == {}
    other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    await migrate(other)
    monkeypatch.undo()
    assert billing(values) == billing(await fresh_values(served.url, StateStore(other), NOW))
    assert value(values, "tensafe_stripe_paying_customers") > 0
    await other.dispose()
    await source.aclose()


async def test_events_sync_after_advance_is_one_request_and_right(
    serve: ServeFn, store: StateStore, tmp_path: Any
) -> None:
    world = small_world()
    served = await serve(world)
    source, _ = make_source(served.url, store)
    first = samples(await source.refresh(NOW))
    later = NOW + timedelta(hours=3)
    advance(world, later)
    assert len(world.stripe["events"]) >= 10
    before = source.api.responses
    values = samples(await source.refresh(later))
    assert source.api.responses - before == 1  # one Events page, nothing re-listed
    assert billing(values) != billing(first)
    assert value(values, "tensafe_stripe_failed_payments_24h") > 0
    other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    await migrate(other)
    assert billing(values) == pytest.approx(
        billing(await fresh_values(served.url, StateStore(other), later))
    )
    await other.dispose()
    # movements explain the change in converted MRR since the day's baseline
    moves = {k[1][0][1]: v for k, v in values.items() if k[0] == "tensafe_stripe_mrr_movement"}
    change = value(values, "tensafe_stripe_mrr_converted", currency="usd") - value(
        first, "tensafe_stripe_mrr_converted", currency="usd"
    )
    net = moves["new"] + moves["reactivation"] + moves["expansion"] - moves["contraction"]
    assert net - moves["churn"] == pytest.approx(change)
    assert moves["churn"] > 0 or moves["contraction"] > 0 or moves["expansion"] > 0
    served.recorder.check()
    await source.aclose()


async def test_restart_resumes_from_persisted_state(serve: ServeFn, state_db_url: str) -> None:
    engine = create_engine(state_db_url)
    await migrate(engine)
    world = small_world()
    served = await serve(world)
    first, _ = make_source(served.url, StateStore(engine))
    await first.refresh(NOW)
    await first.aclose()
    later = NOW + timedelta(hours=2)
    advance(world, later)
    restarted, _ = make_source(served.url, StateStore(engine))
    values = samples(await restarted.refresh(later))
    assert restarted.api.responses == 1  # resumed from the stored event cursor
    await restarted.aclose()
    fresh_engine = create_engine(state_db_url)
    await StateStore(fresh_engine).replace_namespace("stripe.meta", {})  # forget the cursor
    full, _ = make_source(served.url, StateStore(fresh_engine))
    expected = samples(await full.refresh(later))
    assert full.api.responses > 3
    assert billing(values) == pytest.approx(billing(expected))
    await full.aclose()
    await engine.dispose()
    await fresh_engine.dispose()


async def test_expired_event_cursor_falls_back_to_a_full_sync(
    serve: ServeFn, store: StateStore
) -> None:
    world = small_world()
    served = await serve(world)
    source, _ = make_source(served.url, store, full_resync_interval=90 * DAY)
    await source.refresh(NOW)
    advance(world, NOW + timedelta(hours=1))
    await source.refresh(NOW + timedelta(hours=1))  # the cursor is now a real event id
    much_later = NOW + timedelta(days=31)
    advance(world, much_later)  # that event is past Stripe's 30-day retention
    before = source.api.responses
    values = samples(await source.refresh(much_later))
    assert source.api.responses - before > 3  # 400 resource_missing, then everything re-listed
    total = sum(v for k, v in values.items() if k[0] == "tensafe_stripe_subscriptions")
    assert total == len(world.stripe["subscriptions"])
    await source.aclose()


async def test_movements_reset_at_utc_midnight(serve: ServeFn, store: StateStore) -> None:
    world = small_world()
    served = await serve(world)
    source, _ = make_source(served.url, store)
    await source.refresh(NOW)
    evening = NOW.replace(hour=23, minute=50)
    advance(world, evening)
    moved = samples(await source.refresh(evening))
    kinds = ("new", "expansion", "contraction", "churn", "reactivation")
    assert any(value(moved, "tensafe_stripe_mrr_movement", kind=k) > 0 for k in kinds)
    values = samples(await source.refresh(evening + timedelta(minutes=20)))  # next UTC day
    assert all(value(values, "tensafe_stripe_mrr_movement", kind=k) == 0 for k in kinds)
    await source.aclose()


class CountingStore(StateStore):
    """The real store, counting writes."""

    puts = 0

    async def put(self, namespace: str, key: str, value: Any) -> None:
        self.puts += 1
        await super().put(namespace, key, value)


async def test_day_baseline_moves_and_writes_only_on_change(store: StateStore) -> None:
    counting = CountingStore(store.engine)
    day = DayBaseline(counting)
    assert (await day.movements({"cus_a": 100.0}, NOW)).net == 0  # the first run is the baseline
    assert (await day.movements({"cus_a": 100.0}, NOW + timedelta(hours=1))).net == 0
    assert counting.puts == 1  # nothing changed: nothing written
    moved = await day.movements({"cus_a": 150.0, "cus_b": 10.0}, NOW + timedelta(hours=2))
    assert (moved.expansion, moved.new) == (50.0, 10.0)
    assert counting.puts == 2

    restarted = DayBaseline(counting)  # the next UTC day: yesterday's last values are the baseline
    moved = await restarted.movements({"cus_a": 120.0}, NOW + timedelta(days=1))
    assert (moved.contraction, moved.churn) == (30.0, 10.0)
    moved = await restarted.movements({"cus_a": 120.0, "cus_b": 5.0}, NOW + timedelta(days=2))
    assert (moved.reactivation, moved.new) == (5.0, 0.0)  # cus_b paid before, then churned


async def test_429_honours_retry_after_and_5xx_are_retried(
    serve: ServeFn, store: StateStore
) -> None:
    served = await serve(hand_world(), Faults(retry_after=1))
    served.faults.queue("429", "500", "503")
    source, stats = make_source(served.url, store)
    started = time.monotonic()
    values = samples(await source.refresh(NOW))
    assert time.monotonic() - started >= 1.0  # waited the server's Retry-After
    assert value(values, "tensafe_stripe_mrr", currency="eur") == pytest.approx(180.0)
    assert stats.requests[("stripe", "429")] == 1
    assert stats.rate_limited["stripe"] == 1
    assert stats.requests[("stripe", "500")] == stats.requests[("stripe", "503")] == 1
    served.recorder.check()
    await source.aclose()


async def test_a_long_retry_after_fails_the_refresh_at_once(
    serve: ServeFn, store: StateStore
) -> None:
    """Retry-After: 3600 must not park the refresh (source_up would stay 1 meanwhile) nor the
    rate limiter (the next refresh would wait an hour although Stripe recovered)."""
    served = await serve(hand_world(), Faults(retry_after=3600))
    served.faults.queue("429")
    source, stats = make_source(served.url, store)
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        await source.refresh(NOW)
    assert time.monotonic() - started < 5
    assert (caught.value.kind, caught.value.retry_after) == ("rate_limited", 3600)
    assert stats.requests[("stripe", "429")] == 1  # not retried
    started = time.monotonic()  # Stripe has recovered: the next refresh goes straight through
    values = samples(await source.refresh(NOW))
    assert time.monotonic() - started < 5
    assert value(values, "tensafe_stripe_mrr", currency="eur") == pytest.approx(180.0)
    await source.aclose()


async def test_timeouts_are_retried(serve: ServeFn, store: StateStore) -> None:
    served = await serve(hand_world(), Faults(retry_after=0, timeout_seconds=1.0))
    served.faults.queue("timeout")
    source, stats = make_source(served.url, store, request_timeout=0.2)
    values = samples(await source.refresh(NOW))
    assert value(values, "tensafe_stripe_mrr", currency="jpy") == 90000.0
    assert stats.errors[("stripe", "timeout")] == 1
    await source.aclose()


async def test_malformed_json_fails_the_refresh(serve: ServeFn, store: StateStore) -> None:
    served = await serve(hand_world())
    served.faults.queue("malformed")
    source, stats = make_source(served.url, store)
    with pytest.raises(UpstreamError) as caught:
        await source.refresh(NOW)
    assert caught.value.kind == "malformed"
    assert stats.errors[("stripe", "malformed")] == 1
    await source.aclose()


async def test_mid_pagination_failure_then_recovery_counts_once(
    serve: ServeFn, store: StateStore
) -> None:
    world = small_world()  # 120 subscriptions: two pages of 100
    served = await serve(world)
    served.faults.fail_page_after = 0
    source, stats = make_source(served.url, store, max_retries=1)
    with pytest.raises(UpstreamError) as caught:
        await source.refresh(NOW)
    assert caught.value.kind == "server_error"
    assert stats.requests[("stripe", "500")] == 2  # the page and its one retry
    served.faults.clear()
    values = samples(await source.refresh(NOW))
    counted = sum(v for k, v in values.items() if k[0] == "tensafe_stripe_subscriptions")
    assert counted == len(world.stripe["subscriptions"]) == 120
    await source.aclose()


async def test_bad_api_key_is_an_auth_error_without_the_key(
    serve: ServeFn, store: StateStore
) -> None:
    served = await serve(hand_world())
    wrong = "sk_live_very_secret_0000"
    source, stats = make_source(served.url, store, key=wrong)
    with pytest.raises(UpstreamError) as caught:
        await source.refresh(NOW)
    assert caught.value.kind == "auth"
    assert wrong not in str(caught.value) and wrong[-4:] not in repr(caught.value)
    assert stats.requests[("stripe", "401")] == 1  # auth errors are not retried
    served.recorder.check()
    await source.aclose()
