"""The simulated TenSafe API: the product's own metrics, driven by a settable scenario.

Plain functions over a `ProductState` (format and control API in docs/product-sim.md):
`advance(state, now)` integrates the counters at the scenario's rates up to `now` (called
before every read and every scenario change, so a change applies from that moment on);
`api_families` and `cluster_families` describe what the API process and the cluster's
exporters (kube-state-metrics, cAdvisor, DCGM, node-exporter, blackbox, postgres/redis
exporters) would serve. Gauges are exact: the average over pods of CPU, memory and GPU
equals the scenario's value, and the latency histogram's 95th percentile is the
scenario's `latency_p95_ms` (log-normal, so `histogram_quantile` lands near it).
"""

import math
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from pydantic import Field, model_validator

from tensafe_ops.model import Model

NAMESPACE = "tensafe"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0)
# Spread of the log-normal latency distribution (ln-space standard deviation).
LATENCY_SIGMA = 0.5
Z_95 = 1.6448536269514722
STATUS_MIX = {"200": 0.93, "201": 0.05, "404": 0.02}
"""How the successful (non-5xx) answers split; 5xx answers are 500 (80 %) and 503."""
MEMORY_LIMIT_BYTES = 8 * 1024**3
DISK_SIZE_BYTES = 1_000_000_000_000
# Per-pod offsets around the scenario's average (they sum to zero, so the average is exact).
SPREAD = (-4.0, 3.0, -1.0, 2.0, 0.0)
# Share of the 7-day peak the API sees in each UTC hour band (the checklist's Step 7 midpoints).
DAILY_PATTERN = ((0, 6, 0.15), (6, 10, 0.5), (10, 14, 0.9), (14, 18, 0.8), (18, 24, 0.4))
EPSILON_TENANTS = ("acme", "globex", "initech")


class Scenario(Model):
    """What the simulated API is doing; every field can be set through the control API."""

    traffic_rps: float = Field(245.0, ge=0, le=1_000_000)
    """Requests per second at the daily peak (with `daily_pattern`) or all day (without)."""
    daily_pattern: bool = False
    """Scale traffic by the UTC hour band's share of the peak (Step 7's expected traffic)."""
    error_percent: float = Field(0.02, ge=0, le=100)
    latency_p95_ms: float = Field(67.0, gt=0, le=60_000)
    queue_depth: int = Field(12, ge=0)
    epsilon: float = Field(2.3, ge=0)
    """Highest DP epsilon spent by a tenant (the others spend less)."""
    epsilon_budget: float = Field(10.0, gt=0)
    he_ops_per_hour: float = Field(1200.0, ge=0)
    training_active: int = Field(3, ge=0)
    training_queued: int = Field(7, ge=0)
    signups_per_hour: float = Field(0.5, ge=0)
    pods: int = Field(5, ge=0, le=len(SPREAD) * 4)
    pods_ready: int = Field(5, ge=0)
    cpu_percent: float = Field(45.0, ge=0, le=100)
    memory_percent: float = Field(62.0, ge=0, le=100)
    gpu_percent: float = Field(73.0, ge=0, le=100)
    gpu_nodes: int = Field(3, ge=0, le=16)
    disk_percent: float = Field(45.0, ge=0, le=100)
    cert_days_left: float = Field(60.0)
    api_down: bool = False
    """The API answers its /metrics with 503, so Prometheus records `up == 0`."""
    database_down: bool = False
    redis_down: bool = False

    @model_validator(mode="after")
    def _ready_within_pods(self) -> "Scenario":
        if self.pods_ready > self.pods:
            raise ValueError("pods_ready cannot exceed pods")
        return self


@dataclass
class ProductState:
    scenario: Scenario
    at: float
    """Unix time up to which the counters are integrated."""
    requests: dict[str, float] = field(default_factory=dict)
    latency_buckets: list[float] = field(default_factory=lambda: [0.0] * len(LATENCY_BUCKETS))
    latency_count: float = 0.0
    latency_sum: float = 0.0
    he_operations: float = 0.0
    signups: float = 0.0
    cpu_seconds: list[float] = field(default_factory=list)
    network_received: float = 0.0
    network_sent: float = 0.0


def new_state(now: float, scenario: Scenario | None = None) -> ProductState:
    return ProductState(scenario=scenario or Scenario(), at=now)


def pod_names(count: int) -> list[str]:
    return [f"tensafe-api-7d4b9c6f5-{index:02d}x" for index in range(count)]


def traffic_share(hour: int) -> float:
    """The share of the daily peak expected at this UTC hour (Step 7)."""
    for start, end, share in DAILY_PATTERN:
        if start <= hour < end:
            return share
    raise ValueError(f"hour out of range: {hour}")


def current_rps(scenario: Scenario, now: float) -> float:
    if not scenario.daily_pattern:
        return scenario.traffic_rps
    hour = int(now // 3600) % 24
    return scenario.traffic_rps * traffic_share(hour)


def latency_cdf(scenario: Scenario, le: float) -> float:
    """Share of requests answered within `le` seconds (log-normal with the scenario's p95)."""
    mu = math.log(scenario.latency_p95_ms / 1000.0) - Z_95 * LATENCY_SIGMA
    return 0.5 * (1.0 + math.erf((math.log(le) - mu) / (LATENCY_SIGMA * math.sqrt(2.0))))


def _spread(average: float, count: int, low: float = 0.0, high: float = 100.0) -> list[float]:
    """`count` values around `average` (exactly averaging to it unless clamped)."""
    offsets = [SPREAD[i % len(SPREAD)] for i in range(count)]
    if count % len(SPREAD):  # a partial cycle: re-centre so the offsets still sum to zero
        mean = sum(offsets) / count
        offsets = [o - mean for o in offsets]
    return [min(high, max(low, average + offset)) for offset in offsets]


def advance(state: ProductState, now: float) -> None:
    """Integrate every counter from `state.at` to `now` at the scenario's current rates."""
    scenario = state.scenario
    if len(state.cpu_seconds) < scenario.pods:  # new pods start at zero CPU time
        state.cpu_seconds.extend([0.0] * (scenario.pods - len(state.cpu_seconds)))
    elapsed = now - state.at
    if elapsed <= 0:
        return
    state.at = now
    if not scenario.api_down:
        requests = current_rps(scenario, now) * elapsed
        errors = requests * scenario.error_percent / 100.0
        for status, share in (("500", 0.8), ("503", 0.2)):
            state.requests[status] = state.requests.get(status, 0.0) + errors * share
        for status, share in STATUS_MIX.items():
            ok = (requests - errors) * share
            state.requests[status] = state.requests.get(status, 0.0) + ok
        for index, le in enumerate(LATENCY_BUCKETS):
            state.latency_buckets[index] += requests * latency_cdf(scenario, le)
        state.latency_count += requests
        # Mean of the log-normal: exp(mu + sigma^2 / 2).
        mu = math.log(scenario.latency_p95_ms / 1000.0) - Z_95 * LATENCY_SIGMA
        state.latency_sum += requests * math.exp(mu + LATENCY_SIGMA**2 / 2)
        state.he_operations += scenario.he_ops_per_hour / 3600.0 * elapsed
        state.signups += scenario.signups_per_hour / 3600.0 * elapsed
        state.network_received += requests * 24_000
        state.network_sent += requests * 16_000
    cpu = _spread(scenario.cpu_percent, scenario.pods)
    for index, percent in enumerate(cpu):
        state.cpu_seconds[index] += percent / 100.0 * elapsed


def set_scenario(state: ProductState, scenario: Scenario, now: float) -> None:
    """Switch to `scenario` from `now` on (what happened so far keeps the old rates)."""
    advance(state, now)
    state.scenario = scenario


def api_families(state: ProductState) -> list[Metric]:
    """What the TenSafe API process serves on its own /metrics."""
    scenario = state.scenario
    requests = CounterMetricFamily(
        "tensafe_http_requests", "HTTP requests answered, by status code.", labels=["status"]
    )
    for status in sorted(state.requests):
        requests.add_metric([status], math.floor(state.requests[status]))
    cumulative = [
        (str(le), math.floor(count))
        for le, count in zip(LATENCY_BUCKETS, state.latency_buckets, strict=True)
    ]
    latency = HistogramMetricFamily(
        "tensafe_inference_latency_seconds",
        "Inference request latency.",
        buckets=[*cumulative, ("+Inf", math.floor(state.latency_count))],
        sum_value=state.latency_sum,
    )
    queue = GaugeMetricFamily("tensafe_request_queue_depth", "Requests waiting for a worker.")
    queue.add_metric([], scenario.queue_depth)
    epsilon = GaugeMetricFamily(
        "tensafe_dp_epsilon_spent",
        "Differential-privacy epsilon spent per tenant in the current budget period.",
        labels=["tenant"],
    )
    for index, tenant in enumerate(EPSILON_TENANTS):
        epsilon.add_metric([tenant], round(scenario.epsilon * (1.0 - 0.3 * index), 6))
    budget = GaugeMetricFamily(
        "tensafe_dp_epsilon_budget", "Epsilon each tenant may spend per budget period."
    )
    budget.add_metric([], scenario.epsilon_budget)
    he_ops = CounterMetricFamily(
        "tensafe_he_operations", "Homomorphic-encryption operations performed."
    )
    he_ops.add_metric([], math.floor(state.he_operations))
    active = GaugeMetricFamily("tensafe_training_jobs_active", "Training jobs running.")
    active.add_metric([], scenario.training_active)
    queued = GaugeMetricFamily("tensafe_training_jobs_queued", "Training jobs waiting to run.")
    queued.add_metric([], scenario.training_queued)
    signups = CounterMetricFamily("tensafe_signups", "Users who signed up.")
    signups.add_metric([], math.floor(state.signups))
    return [requests, latency, queue, epsilon, budget, he_ops, active, queued, signups]


def cluster_families(state: ProductState, now: float) -> list[Metric]:
    """What the cluster's exporters serve about the API's pods, nodes, GPUs, disk and TLS."""
    scenario = state.scenario
    pods = pod_names(scenario.pods)
    ready = GaugeMetricFamily(
        "kube_pod_status_ready",
        "Describes whether the pod is ready to serve requests.",
        labels=["namespace", "pod", "condition"],
    )
    for index, pod in enumerate(pods):
        is_ready = index < scenario.pods_ready
        for condition, flag in (("true", is_ready), ("false", not is_ready), ("unknown", False)):
            ready.add_metric([NAMESPACE, pod, condition], float(flag))
    container = ["namespace", "pod", "container"]
    cpu = CounterMetricFamily(
        "container_cpu_usage_seconds",
        "Cumulative cpu time consumed in seconds.",
        labels=container,
    )
    working = GaugeMetricFamily(
        "container_memory_working_set_bytes", "Current working set in bytes.", labels=container
    )
    limit = GaugeMetricFamily(
        "container_spec_memory_limit_bytes", "Memory limit for the container.", labels=container
    )
    memory = _spread(scenario.memory_percent, scenario.pods)
    for index, pod in enumerate(pods):
        labels = [NAMESPACE, pod, "api"]
        cpu.add_metric(labels, round(state.cpu_seconds[index], 3))
        working.add_metric(labels, round(memory[index] / 100.0 * MEMORY_LIMIT_BYTES))
        limit.add_metric(labels, MEMORY_LIMIT_BYTES)
    gpu = GaugeMetricFamily(
        "DCGM_FI_DEV_GPU_UTIL",
        "GPU utilization (in %).",
        labels=["gpu", "UUID", "Hostname", "namespace", "pod", "container"],
    )
    for index, percent in enumerate(_spread(scenario.gpu_percent, scenario.gpu_nodes)):
        host, trainer = f"gpu-node-{index + 1}", f"tensafe-trainer-{index}"
        uuid = f"GPU-5f1c0b2e-0000-4000-8000-{index:012d}"
        gpu.add_metric(["0", uuid, host, NAMESPACE, trainer, "trainer"], round(percent, 3))
    return [
        ready,
        cpu,
        working,
        limit,
        gpu,
        *_node_families(state),
        *_dependency_families(scenario, now),
    ]


def _node_families(state: ProductState) -> list[Metric]:
    scenario = state.scenario
    fs_labels = ["instance", "device", "fstype", "mountpoint"]
    volume = ["node-1:9100", "/dev/nvme1n1", "ext4", "/var/lib/tensafe"]
    size = GaugeMetricFamily(
        "node_filesystem_size_bytes", "Filesystem size in bytes.", labels=fs_labels
    )
    size.add_metric(volume, DISK_SIZE_BYTES)
    avail = GaugeMetricFamily(
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
        labels=fs_labels,
    )
    avail.add_metric(volume, round(DISK_SIZE_BYTES * (1.0 - scenario.disk_percent / 100.0)))
    received = CounterMetricFamily(
        "node_network_receive_bytes",
        "Network device statistic receive_bytes.",
        labels=["instance", "device"],
    )
    received.add_metric(["node-1:9100", "eth0"], math.floor(state.network_received))
    sent = CounterMetricFamily(
        "node_network_transmit_bytes",
        "Network device statistic transmit_bytes.",
        labels=["instance", "device"],
    )
    sent.add_metric(["node-1:9100", "eth0"], math.floor(state.network_sent))
    return [size, avail, received, sent]


def _dependency_families(scenario: Scenario, now: float) -> list[Metric]:
    expiry = GaugeMetricFamily(
        "probe_ssl_earliest_cert_expiry",
        "Returns last SSL chain expiry in unixtime.",
        labels=["instance"],
    )
    expiry.add_metric(["https://api.tensafe.io"], round(now + scenario.cert_days_left * 86400))
    pg_up = GaugeMetricFamily("pg_up", "Whether the last scrape of PostgreSQL succeeded.")
    pg_up.add_metric([], 0.0 if scenario.database_down else 1.0)
    redis_up = GaugeMetricFamily("redis_up", "Information about the Redis instance.")
    redis_up.add_metric([], 0.0 if scenario.redis_down else 1.0)
    return [expiry, pg_up, redis_up]
