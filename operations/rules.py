"""The checklist's rules as pure functions: bands, the traffic light, the "concern if" rules of
the morning snapshot, the expected traffic by hour, the capacity thresholds and the scaling
decision. The clock is a parameter; nothing here reads a source.

Boundaries follow the checklist's text literally: a range written "0.1-1%" includes both ends
(0.1 % and 1 % are warning), "> 1%" is strictly above, "Down > 10%" means a fall of more than
10 % (exactly 10 % is no concern), "time > 18:00" is strictly after 18:00.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal

Band = Literal["healthy", "warning", "critical", "unknown", "info"]
Light = Literal["green", "yellow", "red", "unknown"]
LIGHT_EXIT: dict[Light, int] = {"green": 0, "yellow": 1, "red": 2, "unknown": 3}


@dataclass(frozen=True)
class Bands:
    """Where a value turns warning and critical.

    `worse="higher"`: warning from `warning_at` (inclusive unless `warning_inclusive` is
    False), critical strictly above `critical_past`. `worse="lower"` mirrors it.
    `critical_past=None`: no critical band."""

    worse: Literal["higher", "lower"]
    warning_at: float
    critical_past: float | None
    healthy: str
    warning: str
    critical: str
    warning_inclusive: bool = True

    def band(self, value: float | None) -> Band:
        if value is None or math.isnan(value):
            return "unknown"
        sign = 1.0 if self.worse == "higher" else -1.0
        v, warn = sign * value, sign * self.warning_at
        if self.critical_past is not None and v > sign * self.critical_past:
            return "critical"
        if v > warn or (self.warning_inclusive and v == warn):
            return "warning"
        return "healthy"


# Part 1, Step 1 (the traffic light) -------------------------------------------------------
UPTIME = Bands("lower", 99.9, 99.5, "> 99.9%", "99.5-99.9%", "< 99.5%")
ERROR_RATE = Bands("higher", 0.1, 1.0, "< 0.1%", "0.1-1%", "> 1%")
P95_LATENCY = Bands("higher", 100.0, 200.0, "< 100ms", "100-200ms", "> 200ms")
ACTIVE_PODS = Bands("lower", 2.0, 2.0, "3+", "2", "< 2")
GPU_UTILISATION = Bands("higher", 80.0, 90.0, "< 80%", "80-90%", "> 90%")
# Part 6's alert thresholds, for the tiles of the other panels.
QUEUE_DEPTH = Bands("higher", 100.0, None, "<= 100", "> 100 (QueueBacklog)", "-", False)
EPSILON = Bands("higher", 10.0, 10.0, "<= 10", "-", "> 10 (PrivacyBudgetExhausted)", False)
# Part 3, Step 8 thresholds (warning) and Part 6's alerts (critical).
CPU = Bands("higher", 70.0, 80.0, "<= 70%", "> 70% (scale up)", "> 80% (HighCPU)", False)
MEMORY = Bands("higher", 80.0, 85.0, "<= 80%", "> 80% (scale up)", "> 85% (HighMemory)", False)
DISK = Bands("higher", 80.0, None, "<= 80%", "> 80% (DiskSpace)", "-", False)
UP = Bands("lower", 1.0, 0.5, "up", "-", "down", False)

ACTIONS = {
    "uptime_24h": "Check incident log",
    "error_rate_1h": "Review error logs",
    "p95_latency": "Check scaling",
    "active_pods": "Scale immediately",
    "gpu_utilisation": "Add GPU nodes",
    "queue_depth": "Scale up workers",
    "epsilon_spent": "Stop training, alert customer",
    "cpu": "Scale up, check for runaway process",
    "memory": "Scale up, check for memory leak",
    "disk": "Clean logs, expand volume",
    "api_up": "Check pods, restart if needed",
    "database_up": "Failover to replica",
    "redis_up": "Check Redis",
}
"""Part 1's "Action if Critical" and Part 6's "Immediate Action", per tile."""


def light(bands: Iterable[Band]) -> Light:
    """Red if anything is critical; else unknown if anything could not be measured (a light
    is never green by default); else yellow if anything is warning; else green."""
    seen = set(bands)
    if "critical" in seen:
        return "red"
    if "unknown" in seen:
        return "unknown"
    if "warning" in seen:
        return "yellow"
    return "green"


# Part 1, Step 3: "Key numbers to record daily" -----------------------------------------------
Trend = Literal["up", "down", "flat", "unknown"]


@dataclass(frozen=True)
class Concern:
    """ "Concern if": a relative fall (`down_percent`), a relative rise (`up_percent`) or an
    absolute rise (`up_by`)."""

    text: str
    down_percent: float | None = None
    up_percent: float | None = None
    up_by: float | None = None

    def applies(self, yesterday: float | None, today: float | None) -> bool | None:
        """None when either value is missing (or a relative rule has no base)."""
        if yesterday is None or today is None:
            return None
        if self.up_by is not None:
            return today - yesterday > self.up_by
        if yesterday == 0:
            # No base for a percentage: a rise from nothing is a concern only for "up" rules.
            return today > 0 if self.up_percent is not None else None
        change = (today - yesterday) / yesterday * 100
        if self.down_percent is not None:
            return -change > self.down_percent
        assert self.up_percent is not None
        return change > self.up_percent


CONCERNS = {
    "dau": Concern("Down > 10%", down_percent=10),
    "api_calls_24h": Concern("Down > 20%", down_percent=20),
    "training_jobs_24h": Concern("Down > 30%", down_percent=30),
    "error_count_24h": Concern("Up > 50%", up_percent=50),
    "p95_latency_avg_ms": Concern("Up > 50ms", up_by=50),
}


def trend(yesterday: float | None, today: float | None) -> Trend:
    if yesterday is None or today is None:
        return "unknown"
    if today > yesterday:
        return "up"
    if today < yesterday:
        return "down"
    return "flat"


def change_percent(yesterday: float | None, today: float | None) -> float | None:
    if yesterday is None or today is None or yesterday == 0:
        return None
    return (today - yesterday) / yesterday * 100


# Part 3, Step 7: traffic pattern by UTC hour ----------------------------------------------------
@dataclass(frozen=True)
class TrafficBand:
    start_hour: int
    end_hour: int
    expected_low: float
    expected_high: float
    """Expected share of the peak, percent."""
    alert_above: float | None = None
    alert_below: float | None = None

    @property
    def hours(self) -> str:
        return f"{self.start_hour:02d}:00-{self.end_hour:02d}:00"

    @property
    def alert_text(self) -> str:
        if self.alert_above is not None:
            return f"> {self.alert_above:g}% (unusual)"
        return f"< {self.alert_below:g}% ({'outage?' if self.start_hour == 6 else 'issue'})"

    def unusual(self, share: float) -> bool:
        above = self.alert_above is not None and share > self.alert_above
        below = self.alert_below is not None and share < self.alert_below
        return above or below


TRAFFIC_BANDS = (
    TrafficBand(0, 6, 10, 20, alert_above=30),
    TrafficBand(6, 10, 40, 60, alert_below=20),
    TrafficBand(10, 14, 80, 100, alert_below=50),
    TrafficBand(14, 18, 70, 90, alert_below=40),
    TrafficBand(18, 24, 30, 50, alert_above=80),
)


def traffic_band(now: datetime) -> TrafficBand:
    """The band of `now`'s UTC hour (a band includes its start hour, not its end)."""
    hour = now.hour
    return next(b for b in TRAFFIC_BANDS if b.start_hour <= hour < b.end_hour)


# Part 3, Step 8: capacity and the scaling decision --------------------------------------------
@dataclass(frozen=True)
class Capacity:
    key: str
    label: str
    threshold: float
    action: str

    def over(self, value: float | None) -> bool | None:
        return None if value is None else value > self.threshold


CAPACITY = (
    Capacity("cpu", "CPU Avg", 70.0, "Scale up"),
    Capacity("memory", "Memory Avg", 80.0, "Scale up"),
    Capacity("gpu_utilisation", "GPU Util", 85.0, "Add GPU nodes"),
    Capacity("disk", "Disk Usage", 80.0, "Clean up / expand"),
)
SCALE_UP_LATENCY_MS = 100.0
SCALE_DOWN_CPU = 30.0
SCALE_DOWN_MEMORY = 40.0
SCALE_DOWN_AFTER = time(18, 0)
MIN_PODS = 3


@dataclass(frozen=True)
class Decision:
    action: Literal["scale_up", "scale_down", "hold", "unknown"]
    pods_now: int | None
    pods_target: int | None
    reasons: tuple[str, ...]


def scaling_decision(
    *,
    cpu: float | None,
    memory: float | None,
    latency_ms: float | None,
    pods: float | None,
    now: datetime,
) -> Decision:
    """Step 8: scale up by 25 % (at least +2 pods) if CPU > 70 % or memory > 80 % or latency
    > 100 ms; scale down by one pod if CPU < 30 % and memory < 40 % and the UTC time is past
    18:00, never below 3 pods; otherwise hold. Unknown when a deciding input is missing."""
    pods_now = None if pods is None else round(pods)
    up_reasons = []
    if cpu is not None and cpu > 70:
        up_reasons.append(f"CPU {cpu:.1f}% > 70%")
    if memory is not None and memory > 80:
        up_reasons.append(f"memory {memory:.1f}% > 80%")
    if latency_ms is not None and latency_ms > SCALE_UP_LATENCY_MS:
        up_reasons.append(f"P95 latency {latency_ms:.0f}ms > 100ms")
    if up_reasons:
        target = None if pods_now is None else pods_now + max(2, math.ceil(pods_now * 0.25))
        return Decision("scale_up", pods_now, target, tuple(up_reasons))
    if cpu is None or memory is None or latency_ms is None or pods_now is None:
        missing = [
            name
            for name, value in (
                ("CPU", cpu),
                ("memory", memory),
                ("latency", latency_ms),
                ("pods", pods_now),
            )
            if value is None
        ]
        return Decision("unknown", pods_now, None, (f"no data for {', '.join(missing)}",))
    quiet = cpu < SCALE_DOWN_CPU and memory < SCALE_DOWN_MEMORY
    evening = now.time() > SCALE_DOWN_AFTER
    if quiet and evening:
        if pods_now <= MIN_PODS:
            return Decision(
                "hold",
                pods_now,
                pods_now,
                (
                    f"CPU {cpu:.1f}% < 30% and memory {memory:.1f}% < 40% after 18:00, "
                    f"but {pods_now} pods is the minimum of {MIN_PODS}",
                ),
            )
        return Decision(
            "scale_down",
            pods_now,
            pods_now - 1,
            (f"CPU {cpu:.1f}% < 30% and memory {memory:.1f}% < 40% after 18:00 UTC",),
        )
    if quiet:
        reason = f"CPU {cpu:.1f}% and memory {memory:.1f}% are low, but scale down only after 18:00"
    else:
        reason = (
            f"CPU {cpu:.1f}% <= 70%, memory {memory:.1f}% <= 80%, "
            f"P95 latency {latency_ms:.0f}ms <= 100ms"
        )
    return Decision("hold", pods_now, pods_now, (reason,))


# Part 4, Step 9: daily summary status --------------------------------------------------------
def target_status(
    actual: float | None, target: float | None, *, at_most: bool = False
) -> Literal["met", "missed", "no_target", "unknown"]:
    """`at_least` targets by default (signups >= target); `at_most` for churn-like ones."""
    if target is None:
        return "no_target"
    if actual is None:
        return "unknown"
    ok = actual <= target if at_most else actual >= target
    return "met" if ok else "missed"


def worst(bands: Sequence[Band]) -> Band:
    order: dict[Band, int] = {"critical": 4, "unknown": 3, "warning": 2, "healthy": 1, "info": 0}
    return max(bands, key=order.__getitem__, default="info")
