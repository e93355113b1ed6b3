"""The health source: joins facts, exports bands, signals, at-risk MRR and capped scores."""

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from exporter import build_sources
from exporter.config import ExporterConfig, HealthConfig, UsageConfig
from exporter.runner import Runner
from exporter.snapshot import render
from exporter.sources import health, usage
from exporter.sources.base import ScheduledSource, SourceContext, SourceResult
from exporter.stats import UpstreamStats
from tensafe_ops.sandbox.usage_world import write_database
from tensafe_ops.sandbox.world import World
from tensafe_ops.storage import StateStore, create_engine, migrate
from tests.conftest import FakeClock
from tests.exporter.offloop import OffLoopSpy

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class DictFacts:
    """A FactsView over plain dicts, as the runner would hold them."""

    def __init__(self, **by_source: Mapping[str, Any]) -> None:
        self.by_source = by_source

    def facts(self, source: str) -> Mapping[str, Any] | None:
        return self.by_source.get(source)


def usage_fact(idle_days: float | None, tier: str = "enterprise") -> dict[str, Any]:
    last = None if idle_days is None else (NOW - timedelta(days=idle_days)).timestamp()
    return {"last_api_call": last, "seats": 10, "seats_removed_30d": 0, "tier": tier, "name": "x"}


def stripe_fact(mrr: float, *, past_due: bool = False, enterprise: bool = True) -> dict[str, Any]:
    return {
        "mrr": mrr,
        "past_due": past_due,
        "payment_failed_24h": False,
        "enterprise": enterprise,
        "plan": "enterprise" if enterprise else "pro",
    }


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[StateStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    await migrate(engine)
    yield StateStore(engine)
    await engine.dispose()


def samples_of(text: bytes) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def samples(result: SourceResult) -> Samples:
    return samples_of(render(result.families)[0])


async def refresh_with(
    facts: DictFacts,
    state: StateStore,
    clock: FakeClock,
    cfg: HealthConfig | None = None,
    enabled: tuple[str, ...] = ("stripe", "usage"),
) -> SourceResult:
    """One refresh of a health source whose enabled inputs are `enabled` (Zendesk off)."""
    context = SourceContext(state, UpstreamStats(), clock, facts)
    return await health.create(cfg or HealthConfig(), context, enabled).refresh(NOW)


async def test_bands_signals_and_at_risk_mrr(state: StateStore, clock: FakeClock) -> None:
    facts = DictFacts(
        usage={
            "acct_1": usage_fact(0.1),  # healthy
            "acct_2": usage_fact(10),  # -45 -> watch (55)
            "acct_3": usage_fact(10),  # -45 -30 -> at_risk (25)
            "acct_4": usage_fact(4, tier="pro"),  # -20 -30 -> watch (50)
        },
        stripe={
            "acct_1": stripe_fact(9000),
            "acct_2": stripe_fact(6000),
            "acct_3": stripe_fact(7000.5, past_due=True),
            "acct_4": stripe_fact(300, past_due=True, enterprise=False),
        },
        zendesk={
            "acct_5": {"tickets_14d": 5, "tickets_prev_14d": 1, "open_breaching": 1, "open": 2}
        },
    )
    result = await refresh_with(facts, state, clock)
    got = samples(result)
    # acct_5, known only to Zendesk: rising tickets with a breach, 100 - 20 - 10 = 70.
    assert got[("tensafe_health_customers", (("band", "healthy"),))] == 2
    assert got[("tensafe_health_customers", (("band", "watch"),))] == 2
    assert got[("tensafe_health_customers", (("band", "at_risk"),))] == 1
    assert got[("tensafe_health_at_risk_customers", ())] == 1
    assert got[("tensafe_health_at_risk_mrr", ())] == 7000.5
    signal = "tensafe_health_churn_signal_customers"
    assert got[(signal, (("signal", "no_api_calls_7d"),))] == 2
    assert got[(signal, (("signal", "payment_failed"),))] == 2
    assert got[(signal, (("signal", "ticket_breaching_sla"),))] == 1
    assert got[(signal, (("signal", "seats_removed"),))] == 0
    # Per-customer scores only for Stripe enterprise customers; acct_4 (pro) and acct_5 absent.
    per_customer = {k[1]: v for k, v in got.items() if k[0] == "tensafe_health_score"}
    assert per_customer == {
        (("account", "acct_1"), ("tier", "enterprise")): 100,
        (("account", "acct_2"), ("tier", "enterprise")): 55,
        (("account", "acct_3"), ("tier", "enterprise")): 25,
    }
    available = "tensafe_health_inputs_available"
    assert got[(available, (("source", "zendesk"),))] == 1
    assert result.facts["acct_3"] == {
        "score": 25,
        "band": "at_risk",
        "signals": [
            {"signal": "no_api_calls_7d", "penalty": 45},
            {"signal": "payment_failed", "penalty": 30},
        ],
    }
    assert set(result.facts) == {"acct_1", "acct_2", "acct_3", "acct_4", "acct_5"}


async def test_scores_are_computed_off_the_event_loop(
    state: StateStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = OffLoopSpy(health.health_result)
    monkeypatch.setattr(health, "health_result", spy)
    facts = DictFacts(usage={"acct_1": usage_fact(10)}, stripe={"acct_1": stripe_fact(6000)})
    got = samples(await refresh_with(facts, state, clock))
    assert spy.ran_off_loop
    assert got[("tensafe_health_score", (("account", "acct_1"), ("tier", "enterprise")))] == 55


async def test_per_customer_scores_keep_the_lowest_up_to_the_cap(
    state: StateStore, clock: FakeClock
) -> None:
    idle = {"acct_1": 0.0, "acct_2": 10.0, "acct_3": 4.0, "acct_4": 0.0}
    facts = DictFacts(
        usage={a: usage_fact(days) for a, days in idle.items()},
        stripe={a: stripe_fact(6000) for a in idle},
    )
    result = await refresh_with(facts, state, clock, HealthConfig(per_customer_cap=2))
    got = samples(result)
    kept = {dict(k[1])["account"]: v for k, v in got.items() if k[0] == "tensafe_health_score"}
    assert kept == {"acct_2": 55, "acct_3": 80}
    assert got[("tensafe_health_score_omitted_customers", ())] == 2


async def test_a_disabled_zendesk_is_not_waited_for_and_reported(
    state: StateStore, clock: FakeClock
) -> None:
    facts = DictFacts(usage={"acct_1": usage_fact(1)}, stripe={"acct_1": stripe_fact(10)})
    got = samples(await refresh_with(facts, state, clock))
    assert got[("tensafe_health_inputs_available", (("source", "zendesk"),))] == 0
    assert got[("tensafe_health_inputs_available", (("source", "usage"),))] == 1
    assert got[("tensafe_health_customers", (("band", "healthy"),))] == 1


@pytest.mark.parametrize("inputs", [{}, {"stripe", "usage"}], ids=["waiting", "scored"])
async def test_the_configured_band_bounds_are_exported(
    state: StateStore, clock: FakeClock, inputs: set[str]
) -> None:
    """The bounds are config: exported before the first join as after it, for the rules."""
    by_source = {"stripe": stripe_fact(10), "usage": usage_fact(1)}
    facts = DictFacts(**{s: {"acct_1": by_source[s]} for s in inputs})
    cfg = HealthConfig(at_risk_below=50, watch_below=80)
    got = samples(await refresh_with(facts, state, clock, cfg))
    assert ("tensafe_health_score" in {name for name, _ in got}) == bool(inputs)
    bounds = {dict(k[1])["band"]: v for k, v in got.items() if k[0] == "tensafe_health_band_below"}
    assert bounds == {"at_risk": 50, "watch": 80}


@pytest.mark.parametrize(
    ("enabled", "present"),
    [
        (health.INPUTS, {}),
        (health.INPUTS, {"usage"}),
        (health.INPUTS, {"stripe", "usage"}),  # Zendesk's first sync has not finished yet
        (health.INPUTS, {"stripe", "zendesk"}),
        (("zendesk",), {"zendesk", "usage"}),  # stripe and usage are needed in any case
    ],
)
async def test_waits_for_every_enabled_input_and_says_so(
    state: StateStore, clock: FakeClock, enabled: tuple[str, ...], present: set[str]
) -> None:
    ticket_fact = {"tickets_14d": 9, "tickets_prev_14d": 1, "open_breaching": 2, "open": 3}
    by_source = {"zendesk": ticket_fact, "stripe": stripe_fact(10), "usage": usage_fact(1)}
    facts = DictFacts(**{s: {"acct_1": by_source[s]} for s in present})
    result = await refresh_with(facts, state, clock, enabled=enabled)
    got = samples(result)
    # No score at all: only the availability and the configured bounds.
    assert {name for name, _ in got} == {
        "tensafe_health_inputs_available",
        "tensafe_health_band_below",
    }
    for source in health.INPUTS:
        labels = (("source", source),)
        assert got[("tensafe_health_inputs_available", labels)] == (source in present)
    assert result.facts == {} and result.refresh_again_in == health.WAIT_RECHECK


async def test_scores_once_every_enabled_input_has_synced(
    state: StateStore, clock: FakeClock
) -> None:
    ticket_fact = {"tickets_14d": 9, "tickets_prev_14d": 1, "open_breaching": 2, "open": 3}
    facts = DictFacts(
        usage={"acct_1": usage_fact(1)},
        stripe={"acct_1": stripe_fact(10)},
        zendesk={"acct_1": ticket_fact},
    )
    result = await refresh_with(facts, state, clock, enabled=health.INPUTS)
    assert result.refresh_again_in is None
    assert {p["signal"] for p in result.facts["acct_1"]["signals"]} == {
        "tickets_rising",
        "ticket_breaching_sla",
    }  # the ticket signals a score built before Zendesk's first sync would lack


class StripeFacts:
    """Stands in for the Stripe source: only its facts matter to health."""

    name = "stripe"

    def __init__(self, facts: dict[str, Any]) -> None:
        self.result = SourceResult([], facts)

    async def refresh(self, now: datetime) -> SourceResult:
        return self.result

    async def aclose(self) -> None:
        return None


async def test_scores_real_usage_snapshots_and_survives_a_restart(
    state: StateStore, clock: FakeClock, tmp_path: Path
) -> None:
    world = World(now=clock.now)
    long_ago = "2026-01-01T00:00:00+00:00"
    world.usage = {
        "accounts": [
            {"account_id": "acct_1", "name": "Acme", "tier": "enterprise", "created_at": long_ago},
            {"account_id": "acct_2", "name": "Hooli", "tier": "enterprise", "created_at": long_ago},
        ],
        "seats": [
            {"account_id": "acct_1", "user_id": 1, "added_at": long_ago, "removed_at": None},
            {"account_id": "acct_2", "user_id": 2, "added_at": long_ago, "removed_at": None},
            {
                "account_id": "acct_2",
                "user_id": 3,
                "added_at": long_ago,
                "removed_at": (clock.now - timedelta(days=2)).isoformat(),
            },
        ],
        "api_calls": [
            {
                "account_id": "acct_1",
                "user_id": 1,
                "called_at": (clock.now - timedelta(hours=1)).isoformat(),
                "endpoint": "/v1/models",
            },
        ],
    }
    url = f"sqlite+aiosqlite:///{tmp_path / 'usage.db'}"
    await write_database(world, url)

    stats = UpstreamStats()
    runner = Runner([], state, stats, clock)
    context = SourceContext(state, stats, clock, runner)
    usage_cfg, health_cfg = UsageConfig(url=SecretStr(url)), HealthConfig()
    scheduled = [
        ScheduledSource(StripeFacts({"acct_2": stripe_fact(8000)}), usage_cfg),
        ScheduledSource(usage.create(usage_cfg, context), usage_cfg),
        ScheduledSource(health.create(health_cfg, context, ["stripe", "usage"]), health_cfg),
    ]
    runner.sources = scheduled
    assert await runner.refresh_once(scheduled[2])  # no inputs yet: health waits and says so
    waiting = samples_of(runner.current().text)
    assert waiting[("tensafe_health_inputs_available", (("source", "usage"),))] == 0
    assert not [k for k in waiting if k[0] == "tensafe_health_score"]
    assert runner.refresh_again_in["health"] == health.WAIT_RECHECK  # looks again soon
    for source in scheduled:
        assert await runner.refresh_once(source)
    got = samples_of(runner.current().text)
    # acct_2: never called (-45) and 1 of 2 seats removed (-25) -> 30, at risk.
    assert got[("tensafe_health_score", (("account", "acct_2"), ("tier", "enterprise")))] == 30
    assert got[("tensafe_health_at_risk_mrr", ())] == 8000
    assert runner.facts("health") == {
        "acct_1": {"score": 100, "band": "healthy", "signals": []},
        "acct_2": {
            "score": 30,
            "band": "at_risk",
            "signals": [
                {"signal": "no_api_calls_7d", "penalty": 45},
                {"signal": "seats_removed_quarter", "penalty": 25},
            ],
        },
    }
    await scheduled[1].source.aclose()

    # A restarted exporter scores from the persisted facts before any upstream answers.
    restarted = Runner([], state, UpstreamStats(), clock)
    restarted_context = SourceContext(state, restarted.stats, clock, restarted)
    restarted.sources = [
        ScheduledSource(
            health.create(health_cfg, restarted_context, ["stripe", "usage"]), health_cfg
        ),
        ScheduledSource(StripeFacts({}), usage_cfg),
        ScheduledSource(usage.create(usage_cfg, restarted_context), usage_cfg),
    ]
    await restarted.restore()
    clock.advance(minutes=5)
    assert await restarted.refresh_once(restarted.sources[0])
    assert restarted.facts("health") == runner.facts("health")
    assert "health" not in restarted.refresh_again_in


async def test_the_exporter_makes_health_wait_for_its_enabled_inputs(
    state: StateStore, clock: FakeClock
) -> None:
    context = SourceContext(state, UpstreamStats(), clock, DictFacts())
    off = {"enabled": False}
    every = build_sources(ExporterConfig(pagerduty=off, usage=off, stripe=off), context)
    assert [s.source.name for s in every] == ["zendesk", "health"]
    waiting = every[-1].source
    assert isinstance(waiting, health.HealthSource)
    assert waiting.awaited == ("stripe", "usage", "zendesk")
    no_zendesk = build_sources(ExporterConfig(zendesk=off, pagerduty=off, usage=off), context)
    waiting = no_zendesk[-1].source
    assert isinstance(waiting, health.HealthSource) and waiting.awaited == ("stripe", "usage")
    for scheduled in every + no_zendesk:
        await scheduled.source.aclose()
