"""The simulated TenSafe API serves what the checklist's queries read, as its scenario says."""

import math
from collections.abc import Awaitable, Callable
from typing import Any

import click
import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from tensafe_ops.cli import _parse_scenario, main
from tensafe_ops.sandbox import product
from tensafe_ops.sandbox.product import Scenario
from tensafe_ops.sandbox.product_api import make_app
from tests.conftest import assert_promtool_accepts_metrics

Client = TestClient[Any, Any]
T0 = 1_764_244_800.0  # 2025-11-27 12:00 UTC


class WallClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def values(text: str, name: str, **match: str) -> list[float]:
    return [
        value
        for (sample, labels), value in samples(text).items()
        if sample == name and set(match.items()) <= labels
    ]


@pytest.fixture
def clock() -> WallClock:  # type: ignore[override]
    return WallClock()


@pytest.fixture
async def api(
    aiohttp_client: Callable[..., Awaitable[Client]], clock: WallClock
) -> tuple[Client, product.ProductState]:
    state = product.new_state(clock())
    return await aiohttp_client(make_app(state, clock=clock)), state


def test_counters_follow_traffic_and_error_rate() -> None:
    state = product.new_state(T0, Scenario(traffic_rps=100, error_percent=10))
    product.advance(state, T0 + 100)
    assert sum(state.requests.values()) == pytest.approx(10_000)
    errors = state.requests["500"] + state.requests["503"]
    assert errors / sum(state.requests.values()) == pytest.approx(0.10)
    # A change applies from its moment on: what happened before keeps the old rates.
    product.set_scenario(state, Scenario(traffic_rps=100, error_percent=0), T0 + 200)
    product.advance(state, T0 + 300)
    errors_after = state.requests["500"] + state.requests["503"]
    assert errors_after == pytest.approx(2_000)
    assert sum(state.requests.values()) == pytest.approx(30_000)


def test_latency_histogram_puts_the_95th_percentile_at_the_scenario_value() -> None:
    slow = Scenario(latency_p95_ms=300)
    assert product.latency_cdf(slow, 0.3) == pytest.approx(0.95)
    assert product.latency_cdf(slow, 0.2) < 0.95 < product.latency_cdf(slow, 0.5)
    fast = Scenario(latency_p95_ms=67)
    assert product.latency_cdf(fast, 0.1) > 0.95
    state = product.new_state(T0, slow)
    product.advance(state, T0 + 60)
    buckets = state.latency_buckets
    assert buckets == sorted(buckets)
    assert buckets[-1] <= state.latency_count
    mean = state.latency_sum / state.latency_count
    assert 0.1 < mean < 0.3


def test_resource_averages_are_the_scenario_values() -> None:
    scenario = Scenario(pods=5, pods_ready=3, cpu_percent=85, memory_percent=90, gpu_percent=95)
    state = product.new_state(T0, scenario)
    product.advance(state, T0 + 10)
    text = product_text(product.cluster_families(state, T0 + 10))
    ready = values(text, "kube_pod_status_ready", condition="true")
    assert len(ready) == 5 and sum(ready) == 3  # count() counts pods, sum() counts ready ones
    cpu = values(text, "container_cpu_usage_seconds_total", namespace="tensafe")
    assert sum(cpu) / len(cpu) == pytest.approx(8.5)  # 0.85 cores for 10 s
    working = values(text, "container_memory_working_set_bytes")
    limits = values(text, "container_spec_memory_limit_bytes")
    assert (sum(working) / len(working)) / (sum(limits) / len(limits)) == pytest.approx(0.9)
    gpu = values(text, "DCGM_FI_DEV_GPU_UTIL", namespace="tensafe")
    assert len(gpu) == 3 and sum(gpu) / 3 == pytest.approx(95, abs=0.01)


def test_daily_pattern_scales_traffic_by_utc_hour_band() -> None:
    scenario = Scenario(traffic_rps=200, daily_pattern=True)
    midnight = math.floor(T0 / 86400) * 86400
    assert product.current_rps(scenario, midnight + 3 * 3600) == pytest.approx(30)
    assert product.current_rps(scenario, midnight + 12 * 3600) == pytest.approx(180)
    assert product.current_rps(scenario, midnight + 23 * 3600) == pytest.approx(80)
    flat = Scenario(traffic_rps=200)
    assert product.current_rps(flat, midnight + 3 * 3600) == 200


def product_text(families: list[Any]) -> str:
    from tensafe_ops.sandbox.product_api import exposition

    return exposition(families).decode()


async def test_api_down_fails_the_scrape_but_not_the_cluster_metrics(
    api: tuple[Client, product.ProductState], clock: WallClock
) -> None:
    client, _state = api
    assert (await client.get("/metrics")).status == 200
    changed = await client.patch("/_sandbox/scenario", json={"api_down": True})
    assert changed.status == 200 and (await changed.json())["api_down"] is True
    assert (await client.get("/metrics")).status == 503
    cluster = await client.get("/cluster/metrics")
    assert cluster.status == 200
    assert values(await cluster.text(), "pg_up") == [1.0]
    await client.patch("/_sandbox/scenario", json={"database_down": True})
    assert values(await (await client.get("/cluster/metrics")).text(), "pg_up") == [0.0]


async def test_scenario_changes_drive_the_served_counters(
    api: tuple[Client, product.ProductState], clock: WallClock
) -> None:
    client, _state = api
    await client.put("/_sandbox/scenario", json={"traffic_rps": 50, "error_percent": 20})
    clock.now += 60
    text = await (await client.get("/metrics")).text()
    total = sum(values(text, "tensafe_http_requests_total"))
    assert total == pytest.approx(3000, abs=5)
    five_xx = sum(values(text, "tensafe_http_requests_total", status="500")) + sum(
        values(text, "tensafe_http_requests_total", status="503")
    )
    assert five_xx == pytest.approx(600, abs=2)
    await client.patch("/_sandbox/scenario", json={"epsilon": 10.5, "queue_depth": 150})
    clock.now += 60
    text = await (await client.get("/metrics")).text()
    assert max(values(text, "tensafe_dp_epsilon_spent")) == 10.5
    assert values(text, "tensafe_request_queue_depth") == [150.0]
    later = sum(values(text, "tensafe_http_requests_total"))
    assert later == pytest.approx(6000, abs=5)  # counters never go back
    scenario = await (await client.get("/_sandbox/scenario")).json()
    assert scenario["error_percent"] == 20 and scenario["epsilon"] == 10.5
    reset = await (await client.put("/_sandbox/scenario", json={})).json()
    assert reset == Scenario().model_dump()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"error_percent": 140}, "error_percent"),
        ({"errors": 5}, "errors"),
        ({"pods": 3, "pods_ready": 4}, "<body>"),
        ([1, 2], "<body>"),
    ],
)
async def test_bad_scenarios_are_refused_with_the_field(
    api: tuple[Client, product.ProductState], body: Any, field: str
) -> None:
    client, state = api
    before = state.scenario
    response = await client.patch("/_sandbox/scenario", json=body)
    assert response.status == 400
    assert (await response.json())["field"] == field
    assert state.scenario == before
    not_json = await client.patch("/_sandbox/scenario", data=b"{")
    assert not_json.status == 400


async def test_both_expositions_pass_promtool(api: tuple[Client, product.ProductState]) -> None:
    client, _state = api
    for path in ("/metrics", "/cluster/metrics"):
        await assert_promtool_accepts_metrics(await (await client.get(path)).read())


def test_cli_scenario_flags_are_validated() -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["sandbox", "--scenario", "error_percent=120"])
    assert bad.exit_code == 2 and "error_percent: Input should be less than" in bad.output
    shape = runner.invoke(main, ["sandbox", "--scenario", "api_down"])
    assert shape.exit_code == 2 and "expected KEY=VALUE" in shape.output
    not_demo = runner.invoke(main, ["serve", "--scenario", "api_down=true"])
    assert not_demo.exit_code == 2 and "only make sense with --demo" in not_demo.output
    parsed = _parse_scenario(
        click.Context(main), click.Option(["--scenario"]), ("error_percent=12", "api_down=true")
    )
    assert parsed == Scenario(error_percent=12, api_down=True)
