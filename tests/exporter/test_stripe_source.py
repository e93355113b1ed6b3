"""The Stripe source against the fake Stripe API, over HTTP, with the real stripe-python SDK."""

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from exporter.config import MrrRules, StripeConfig
from exporter.snapshot import render
from exporter.sources import stripe as stripe_source
from exporter.sources.base import SourceContext, SourceResult
from exporter.sources.stripe import DayBaseline, StripeSource, create
from exporter.stats import UpstreamStats
from tensafe_ops.http import UpstreamError
from tensafe_ops.sandbox import stripe_api
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
        # /v1/prices/{id} (to read a tiered price's tiers) is not in the trimmed contract
        recorder = ContractRecorder("stripe", skip_paths=("/v1/prices/",))
        recorder.attach(app)
        server: TestServer = await aiohttp_server(app)
        return Served(str(server.make_url("")).rstrip("/"), faults, recorder)

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
