"""The PagerDuty source against the fake REST API over HTTP, with the real SDK."""

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pagerduty
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from exporter.config import PagerDutyConfig
from exporter.snapshot import render
from exporter.sources import pagerduty as pagerduty_source
from exporter.sources.base import SourceContext
from exporter.sources.pagerduty import ACK_NAMESPACE, PagerDutySource
from exporter.stats import UpstreamStats
from tensafe_ops.http import UpstreamError
from tensafe_ops.sandbox import pagerduty_api, pagerduty_world
from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.world import World, WorldSize, generate, load
from tensafe_ops.storage import StateStore, create_engine, migrate
from tests.contracts import ContractRecorder
from tests.exporter.offloop import OffLoopSpy

TOKEN = "u+pd-secret-token-9876"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
ServeFn = Callable[..., Awaitable[str]]


class NoFacts:
    def facts(self, source: str) -> Mapping[str, Any] | None:
        return None


def samples(source_result_families: Any) -> Samples:
    text, _ = render(source_result_families)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def scenario_world() -> tuple[World, dict[str, dict[str, Any]]]:
    """A world with hand-placed incidents whose metrics are known exactly."""
    world = generate(7, WorldSize(accounts=3, tickets=0, subscriptions=0, incidents=0), NOW)
    rng = world.rng
    taken: set[str] = set()
    users = world.pagerduty["users"]
    p1 = pagerduty_world.reference(world.pagerduty["priorities"][0], "priority", "priorities")

    def incident(number: int, age: timedelta, urgency: str) -> dict[str, Any]:
        made = pagerduty_world.new_incident(world, rng, number, NOW - age, taken)
        made["urgency"] = urgency
        made.pop("priority", None)
        world.pagerduty["incidents"].append(made)
        return made

    forgotten = incident(1, timedelta(days=45), "high")  # open for 45 days: must count
    forgotten["priority"] = p1
    acked = incident(2, timedelta(hours=2), "low")
    pagerduty_world.acknowledge(acked, users[0], NOW - timedelta(hours=2) + timedelta(minutes=10))
    quick = incident(3, timedelta(hours=3), "high")
    pagerduty_world.resolve(quick, users[1], NOW - timedelta(hours=2))
    slow = incident(4, timedelta(hours=20), "high")
    pagerduty_world.resolve(slow, users[1], NOW - timedelta(hours=18))
    old = incident(5, timedelta(days=10), "low")
    pagerduty_world.resolve(old, users[2], NOW - timedelta(days=9))
    return world, {"forgotten": forgotten, "acked": acked}


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[StateStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    await migrate(engine)
    yield StateStore(engine)
    await engine.dispose()


@pytest.fixture
def recorder() -> ContractRecorder:
    return ContractRecorder("pagerduty-rest")


@pytest.fixture
async def serve(
    aiohttp_server: Callable[..., Awaitable[TestServer]], recorder: ContractRecorder
) -> ServeFn:
    async def start(world: World, faults: Faults, offset_cap: int = 10_000) -> str:
        app = pagerduty_api.make_app(
            world, faults, credentials={"token": TOKEN}, offset_cap=offset_cap
        )
        recorder.attach(app)
        server = await aiohttp_server(app, host="127.0.0.1")
        return str(server.make_url("/"))

    return start


def make_source(
    url: str, state: StateStore, stats: UpstreamStats, offset_cap: int = 10_000, **cfg: Any
) -> PagerDutySource:
    config = PagerDutyConfig(
        base_url=url,
        token=SecretStr(cfg.pop("token", TOKEN)),
        max_retries=cfg.pop("retries", 2),
        **cfg,
    )
    context = SourceContext(state=state, stats=stats, clock=lambda: NOW, facts=NoFacts())
    return PagerDutySource(config, context, offset_cap=offset_cap, backoff_base=0.01)


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, tuple(sorted(labels.items())))


async def test_metrics_match_the_world_including_a_45_day_old_open_incident(
    serve: ServeFn, state: StateStore, recorder: ContractRecorder
) -> None:
    world, _ = scenario_world()
    stats = UpstreamStats()
    source = make_source(await serve(world, Faults()), state, stats)
    values = samples((await source.refresh(NOW)).families)

    open_ = "tensafe_pagerduty_open_incidents"
    assert values[key(open_, urgency="high", status="triggered")] == 1  # the 45-day-old one
    assert values[key(open_, urgency="low", status="acknowledged")] == 1
    assert values[key(open_, urgency="high", status="acknowledged")] == 0
    by_priority = "tensafe_pagerduty_open_incidents_by_priority"
    assert values[key(by_priority, priority="P1")] == 1
    assert values[key(by_priority, priority="none")] == 1
    assert values[key("tensafe_pagerduty_incidents_opened", window="8h")] == 2
    assert values[key("tensafe_pagerduty_incidents_opened", window="24h")] == 3
    oldest = values[key("tensafe_pagerduty_oldest_unacknowledged_incident_age_seconds")]
    assert oldest == timedelta(days=45).total_seconds()
    tta = "tensafe_pagerduty_time_to_acknowledge_seconds"
    assert values[key(tta, quantile="0.5")] == 600
    ttr = "tensafe_pagerduty_time_to_resolve_seconds"
    assert values[key(ttr, quantile="0.5")] == 5400  # of 3600 s and 7200 s; 10-day-old left out
    assert values[key(ttr, quantile="0.95")] == pytest.approx(7020)
    assert values[key(f"{ttr}_count")] == 2
    assert values[key(f"{ttr}_sum")] == 3600 + 7200
    # respond-within targets: high (critical class) 15 min, low (warning class) 1 h
    acked = "tensafe_pagerduty_acknowledged_incidents"
    ratio = "tensafe_pagerduty_acknowledge_achievement_ratio"
    for window in ("24h", "7d"):
        # low: acked after 10 min (met); high: both resolved unacknowledged after 1 h and 2 h
        assert values[key(acked, urgency="low", window=window, result="met")] == 1
        assert values[key(acked, urgency="low", window=window, result="missed")] == 0
        assert values[key(acked, urgency="high", window=window, result="met")] == 0
        assert values[key(acked, urgency="high", window=window, result="missed")] == 2
        assert values[key(ratio, urgency="low", window=window)] == 1.0
        assert values[key(ratio, urgency="high", window=window)] == 0.0
    target = "tensafe_pagerduty_acknowledge_target_seconds"
    assert values[key(target, urgency="high")] == 900 and values[key(target, urgency="low")] == 3600

    level_one = {
        (o["escalation_policy"]["summary"], o["user"]["summary"])
        for o in world.pagerduty["oncalls"]
        if o["escalation_level"] == 1
    }
    oncall = {
        (dict(labels)["escalation_policy"], dict(labels)["user"])
        for (name, labels) in values
        if name == "tensafe_pagerduty_oncall_info"
    }
    assert oncall == level_one
    assert all("@" not in user for _, user in oncall)  # names, never emails
    assert values[key("tensafe_pagerduty_pagination_capped", listing="open_incidents")] == 0
    assert stats.requests[("pagerduty", "200")] == 3
    assert recorder.check() == 3


async def test_families_are_computed_off_the_event_loop(
    serve: ServeFn, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, _ = scenario_world()
    spy = OffLoopSpy(pagerduty_source.incident_families)
    monkeypatch.setattr(pagerduty_source, "incident_families", spy)
    source = make_source(await serve(world, Faults()), state, UpstreamStats())
    values = samples((await source.refresh(NOW)).families)
    assert spy.ran_off_loop
    assert values[key("tensafe_pagerduty_open_incidents", urgency="high", status="triggered")] == 1
    assert values[key("tensafe_pagerduty_time_to_acknowledge_seconds", quantile="0.5")] == 600


async def test_oncall_series_are_capped(serve: ServeFn, state: StateStore) -> None:
    world, _ = scenario_world()
    source = make_source(await serve(world, Faults()), state, UpstreamStats(), max_oncall_series=2)
    values = samples((await source.refresh(NOW)).families)
    oncall = sorted(
        dict(labels)["escalation_policy"]
        for (name, labels) in values
        if name == "tensafe_pagerduty_oncall_info"
    )
    assert oncall == ["Billing", "Platform"]  # 4 policies, first 2 by name


async def test_acknowledgement_is_remembered_after_resolution_and_restart(
    serve: ServeFn, state: StateStore
) -> None:
    world, placed = scenario_world()
    url = await serve(world, Faults())
    await make_source(url, state, UpstreamStats()).refresh(NOW)
    assert placed["acked"]["id"] in await state.get_all(ACK_NAMESPACE)

    # Resolved incidents no longer list acknowledgements; the stored time still counts.
    pagerduty_world.resolve(placed["acked"], world.pagerduty["users"][0], NOW)
    restarted = make_source(url, state, UpstreamStats())
    values = samples((await restarted.refresh(NOW)).families)
    assert values[key("tensafe_pagerduty_time_to_acknowledge_seconds", quantile="0.5")] == 600
    open_ = "tensafe_pagerduty_open_incidents"
    assert values[key(open_, urgency="low", status="acknowledged")] == 0


async def test_time_to_acknowledge_keeps_the_first_acknowledgement_after_a_re_ack(
    serve: ServeFn, state: StateStore
) -> None:
    # created 10:00, acknowledged 10:05; the service's 30-minute acknowledgement timeout
    # triggers it again at 10:35 (the API then lists no acknowledgement); re-acknowledged
    # 11:00, when the API lists only the 11:00 one. Time to acknowledge: 300 s, not 3,600 s.
    world = generate(7, WorldSize(accounts=3, tickets=0, subscriptions=0, incidents=0), NOW)
    created = NOW - timedelta(hours=2)
    page = pagerduty_world.new_incident(world, world.rng, 1, created, set())
    world.pagerduty["incidents"].append(page)
    service = next(s for s in world.pagerduty["services"] if s["id"] == page["service"]["id"])
    assert service["acknowledgement_timeout"] == 1800
    url = await serve(world, Faults())
    source = make_source(url, state, UpstreamStats())
    tta = "tensafe_pagerduty_time_to_acknowledge_seconds"
    user = world.pagerduty["users"][0]

    pagerduty_world.acknowledge(page, user, created + timedelta(minutes=5))
    values = samples((await source.refresh(created + timedelta(minutes=10))).families)
    assert values[key(tta, quantile="0.5")] == 300

    expired = pagerduty_world.expire_acknowledgements(
        world, created + timedelta(minutes=10), created + timedelta(minutes=40)
    )
    assert expired == [page] and page["status"] == "triggered" and not page["acknowledgements"]
    values = samples((await source.refresh(created + timedelta(minutes=40))).families)
    assert values[key("tensafe_pagerduty_open_incidents", urgency=page["urgency"],
                      status="triggered")] == 1  # fmt: skip
    assert values[key(tta, quantile="0.5")] == 300  # the stored first acknowledgement

    pagerduty_world.acknowledge(page, user, created + timedelta(hours=1))
    restarted = make_source(url, state, UpstreamStats())  # the earliest survives a restart
    values = samples((await restarted.refresh(created + timedelta(hours=1, minutes=5))).families)
    re_ack = pagerduty_world.iso(created + timedelta(hours=1))
    assert [a["at"] for a in page["acknowledgements"]] == [re_ack]
    assert values[key(tta, quantile="0.5")] == 300
    assert values[key(tta + "_count")] == 1


def test_acknowledgement_timeouts_happen_as_the_world_advances() -> None:
    world = generate(3, WorldSize(accounts=3, tickets=0, subscriptions=0, incidents=0), NOW)
    page = pagerduty_world.new_incident(world, world.rng, 1, NOW, set())
    world.pagerduty["incidents"].append(page)
    pagerduty_world.acknowledge(page, world.pagerduty["users"][0], NOW)
    assert pagerduty_world.expire_acknowledgements(world, NOW, NOW + timedelta(minutes=29)) == []
    assert page["status"] == "acknowledged"
    assert pagerduty_world.expire_acknowledgements(world, NOW, NOW + timedelta(minutes=30))
    assert page["last_status_change_at"] == pagerduty_world.iso(NOW + timedelta(minutes=30))


async def test_429_waits_for_retry_after_and_is_counted(serve: ServeFn, state: StateStore) -> None:
    world, _ = scenario_world()
    faults = Faults(retry_after=1)
    stats = UpstreamStats()
    source = make_source(await serve(world, faults), state, stats)
    faults.queue("429")
    started = time.monotonic()
    await source.refresh(NOW)
    assert time.monotonic() - started >= 0.9
    assert stats.requests[("pagerduty", "429")] == 1
    assert stats.rate_limited["pagerduty"] == 1
    assert stats.requests[("pagerduty", "200")] == 3


async def test_429_is_not_retried_forever(serve: ServeFn, state: StateStore) -> None:
    world, _ = scenario_world()
    faults = Faults(retry_after=0)
    stats = UpstreamStats()
    source = make_source(await serve(world, faults), state, stats, retries=2)
    faults.queue("429", "429", "429", "429", "429")
    with pytest.raises(UpstreamError) as raised:
        await source.refresh(NOW)
    assert raised.value.kind == "rate_limited"
    assert stats.requests[("pagerduty", "429")] == 3  # first try + 2 retries, then give up
    assert len(faults.queued) == 2


async def test_server_errors_are_retried(serve: ServeFn, state: StateStore) -> None:
    world, _ = scenario_world()
    faults = Faults()
    stats = UpstreamStats()
    source = make_source(await serve(world, faults), state, stats)
    faults.queue("500", "503")
    values = samples((await source.refresh(NOW)).families)
    assert values[key("tensafe_pagerduty_open_incidents", urgency="high", status="triggered")] == 1
    assert stats.requests[("pagerduty", "500")] == 1
    assert stats.requests[("pagerduty", "503")] == 1
    assert stats.errors[("pagerduty", "server_error")] == 2


async def test_timeout_and_malformed_responses_fail_the_refresh(
    serve: ServeFn, state: StateStore
) -> None:
    world, _ = scenario_world()
    faults = Faults(timeout_seconds=1.5)
    url = await serve(world, faults)
    slow = make_source(url, state, UpstreamStats(), retries=0, request_timeout=0.3)
    faults.queue("timeout")
    with pytest.raises(UpstreamError) as raised:
        await slow.refresh(NOW)
    assert raised.value.kind == "timeout"

    faults.queue("malformed")
    with pytest.raises(UpstreamError) as raised:
        await make_source(url, state, UpstreamStats()).refresh(NOW)
    assert raised.value.kind == "malformed"


async def test_mid_pagination_failure_fails_the_refresh(serve: ServeFn, state: StateStore) -> None:
    world = generate(3, WorldSize(accounts=3, tickets=0, subscriptions=0, incidents=1500), NOW)
    faults = Faults(fail_page_after=0)
    stats = UpstreamStats()
    source = make_source(await serve(world, faults), state, stats, retries=1)
    with pytest.raises(UpstreamError) as raised:
        await source.refresh(NOW)
    assert raised.value.kind == "server_error"
    assert stats.requests[("pagerduty", "500")] == 2


async def test_offset_cap_is_respected_and_open_counts_stay_exact(
    serve: ServeFn, state: StateStore, recorder: ContractRecorder
) -> None:
    world, _ = scenario_world()
    for number in range(10, 260):
        made = pagerduty_world.new_incident(
            world, world.rng, number, NOW - timedelta(days=40, minutes=number), set()
        )
        world.pagerduty["incidents"].append(made)
    expected: dict[tuple[str, str], int] = {}
    for incident in world.pagerduty["incidents"]:
        if incident["status"] != "resolved":
            pair = (incident["urgency"], incident["status"])
            expected[pair] = expected.get(pair, 0) + 1
    source = make_source(await serve(world, Faults(), offset_cap=150), state, UpstreamStats(), 150)
    values = samples((await source.refresh(NOW)).families)
    assert values[key("tensafe_pagerduty_pagination_capped", listing="open_incidents")] == 1
    for (urgency, status), count in expected.items():
        got = values[key("tensafe_pagerduty_open_incidents", urgency=urgency, status=status)]
        assert got == count
    assert sum(expected.values()) == 252
    recorder.check()  # never asked past the cap, so no 400s either
    assert all(ex.response.status_code == 200 for ex in recorder.exchanges)


async def test_wrong_token_is_an_auth_error_without_the_token(
    serve: ServeFn, state: StateStore
) -> None:
    world, _ = scenario_world()
    wrong = "u+pd-wrong-token-4321"
    stats = UpstreamStats()
    source = make_source(await serve(world, Faults()), state, stats, token=wrong)
    with pytest.raises(UpstreamError) as raised:
        await source.refresh(NOW)
    assert raised.value.kind == "auth"
    assert not raised.value.retryable
    message = f"{raised.value} {raised.value!r} {raised.value.__cause__!r}"
    assert wrong not in message
    assert wrong[-4:] not in message
    assert stats.requests[("pagerduty", "401")] == 1


async def test_plain_http_is_refused_except_on_loopback(state: StateStore) -> None:
    with pytest.raises(pagerduty.UrlError):
        make_source("http://pagerduty.example.com", state, UpstreamStats())
    make_source("http://127.0.0.1:9", state, UpstreamStats())


@pytest.fixture
def documented_world(tmp_path: Path) -> World:
    """The example world file of docs/world-file/pagerduty.md, loaded like --world does."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "world-file" / "pagerduty.md"
    example = doc.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "world.yaml").write_text(example)
    return load(tmp_path / "world.yaml")


async def test_documented_world_file_example(
    serve: ServeFn, state: StateStore, documented_world: World, recorder: ContractRecorder
) -> None:
    world = documented_world
    source = make_source(await serve(world, Faults()), state, UpstreamStats())
    values = samples((await source.refresh(world.now)).families)
    open_ = "tensafe_pagerduty_open_incidents"
    assert values[key(open_, urgency="high", status="triggered")] == 1
    assert values[key(open_, urgency="low", status="acknowledged")] == 1
    assert values[key("tensafe_pagerduty_time_to_acknowledge_seconds", quantile="0.5")] == 600
    assert values[key("tensafe_pagerduty_time_to_resolve_seconds", quantile="0.5")] == 3600
    oncall = key("tensafe_pagerduty_oncall_info", escalation_policy="Platform", user="Ada Lovelace")
    assert values[oncall] == 1
    recorder.check()


async def test_overview_lists_incidents_with_titles_and_the_coming_shifts(
    serve: ServeFn, state: StateStore
) -> None:
    world, _ = scenario_world()
    policy = world.pagerduty["oncalls"][0]
    # The next level-1 shift of the first policy starts in 3 hours: listed in the overview
    # (the handoff names it), but not on call now, so not in the metric.
    upcoming = {
        **policy,
        "escalation_level": 1,
        "user": {**policy["user"], "summary": "Katherine Johnson", "id": "PNEXT01"},
        "start": (NOW + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": (NOW + timedelta(hours=27)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    world.pagerduty["oncalls"].append(upcoming)
    source = make_source(await serve(world, Faults()), state, UpstreamStats())
    result = await source.refresh(NOW)
    overview = result.overview
    assert overview["open_total"] == 2
    incidents = overview["incidents"]
    assert {i["status"] for i in incidents[:2]} == {"triggered", "acknowledged"}  # open first
    assert all(i["title"] for i in incidents)
    by_id = {i["id"]: i for i in incidents}
    resolved = [i for i in world.pagerduty["incidents"] if i["status"] == "resolved"]
    assert by_id[resolved[0]["id"]]["resolved_at"] == resolved[0]["resolved_at"]
    shifts = [(o["user"], o["start"]) for o in overview["oncalls"]]
    assert ("Katherine Johnson", upcoming["start"]) in shifts
    values = samples(result.families)
    assert not any(
        name == "tensafe_pagerduty_oncall_info" and dict(labels)["user"] == "Katherine Johnson"
        for name, labels in values
    )
