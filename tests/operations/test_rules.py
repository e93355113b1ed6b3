"""The checklist's rules at their boundaries (Part 1 Step 1, Step 3, Step 7, Step 8, Step 9)."""

from datetime import UTC, datetime

import pytest

from operations import rules


@pytest.mark.parametrize(
    ("bands", "value", "expected"),
    [
        # API uptime: > 99.9 healthy, 99.5-99.9 warning, < 99.5 critical
        (rules.UPTIME, 99.95, "healthy"),
        (rules.UPTIME, 99.9, "warning"),
        (rules.UPTIME, 99.5, "warning"),
        (rules.UPTIME, 99.49, "critical"),
        # Error rate: < 0.1 healthy, 0.1-1 warning, > 1 critical
        (rules.ERROR_RATE, 0.099, "healthy"),
        (rules.ERROR_RATE, 0.1, "warning"),
        (rules.ERROR_RATE, 1.0, "warning"),
        (rules.ERROR_RATE, 1.01, "critical"),
        # P95 latency: < 100 healthy, 100-200 warning, > 200 critical
        (rules.P95_LATENCY, 99.9, "healthy"),
        (rules.P95_LATENCY, 100.0, "warning"),
        (rules.P95_LATENCY, 200.0, "warning"),
        (rules.P95_LATENCY, 200.1, "critical"),
        # Active pods: 3+ healthy, 2 warning, < 2 critical
        (rules.ACTIVE_PODS, 3, "healthy"),
        (rules.ACTIVE_PODS, 2, "warning"),
        (rules.ACTIVE_PODS, 1, "critical"),
        (rules.ACTIVE_PODS, 0, "critical"),
        # GPU: < 80 healthy, 80-90 warning, > 90 critical
        (rules.GPU_UTILISATION, 79.9, "healthy"),
        (rules.GPU_UTILISATION, 80.0, "warning"),
        (rules.GPU_UTILISATION, 90.0, "warning"),
        (rules.GPU_UTILISATION, 90.1, "critical"),
        # Step 8 / Part 6: CPU > 70 scale up, > 80 HighCPU
        (rules.CPU, 70.0, "healthy"),
        (rules.CPU, 70.1, "warning"),
        (rules.CPU, 80.0, "warning"),
        (rules.CPU, 80.1, "critical"),
        (rules.MEMORY, 80.0, "healthy"),
        (rules.MEMORY, 85.0, "warning"),
        (rules.MEMORY, 85.1, "critical"),
        (rules.DISK, 80.0, "healthy"),
        (rules.DISK, 99.0, "warning"),
        (rules.QUEUE_DEPTH, 100, "healthy"),
        (rules.QUEUE_DEPTH, 101, "warning"),
        (rules.EPSILON, 10.0, "healthy"),
        (rules.EPSILON, 10.01, "critical"),
        (rules.UP, 1, "healthy"),
        (rules.UP, 0, "critical"),
        (rules.UPTIME, None, "unknown"),
        (rules.ERROR_RATE, float("nan"), "unknown"),
    ],
)
def test_bands_at_their_boundaries(bands: rules.Bands, value: float, expected: str) -> None:
    assert bands.band(value) == expected


@pytest.mark.parametrize(
    ("bands", "expected"),
    [
        (["healthy", "healthy", "info"], "green"),
        (["healthy", "warning"], "yellow"),
        (["warning", "critical"], "red"),
        (["healthy", "unknown"], "unknown"),
        (["warning", "unknown"], "unknown"),
        (["unknown", "critical"], "red"),
        ([], "green"),
    ],
)
def test_traffic_light_is_never_green_on_missing_data(bands: list[str], expected: str) -> None:
    assert rules.light(bands) == expected  # type: ignore[arg-type]
    assert rules.LIGHT_EXIT[expected] == {"green": 0, "yellow": 1, "red": 2, "unknown": 3}[expected]  # type: ignore[index]


@pytest.mark.parametrize(
    ("key", "yesterday", "today", "concern"),
    [
        ("dau", 1000, 900, False),  # down exactly 10 %: not "> 10 %"
        ("dau", 1000, 899, True),
        ("dau", 1000, 1200, False),
        ("api_calls_24h", 1000, 800, False),
        ("api_calls_24h", 1000, 799, True),
        ("training_jobs_24h", 100, 70, False),
        ("training_jobs_24h", 100, 69, True),
        ("error_count_24h", 100, 150, False),
        ("error_count_24h", 100, 151, True),
        ("error_count_24h", 0, 3, True),  # errors from none: a rise without a base
        ("error_count_24h", 0, 0, False),
        ("p95_latency_avg_ms", 60, 110, False),  # up exactly 50 ms
        ("p95_latency_avg_ms", 60, 110.5, True),
        ("dau", None, 900, None),
        ("dau", 0, 10, None),
    ],
)
def test_concern_rules_at_their_boundaries(
    key: str, yesterday: float | None, today: float | None, concern: bool | None
) -> None:
    assert rules.CONCERNS[key].applies(yesterday, today) is concern


def test_trend_and_change() -> None:
    assert rules.trend(10, 12) == "up"
    assert rules.trend(10, 8) == "down"
    assert rules.trend(10, 10) == "flat"
    assert rules.trend(None, 10) == "unknown"
    assert rules.change_percent(200, 150) == -25.0
    assert rules.change_percent(0, 150) is None


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, 27, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "hours", "share", "unusual"),
    [
        (at(0), "00:00-06:00", 30.0, False),
        (at(5, 59), "00:00-06:00", 30.1, True),
        (at(6), "06:00-10:00", 20.0, False),
        (at(9, 59), "06:00-10:00", 19.9, True),
        (at(10), "10:00-14:00", 50.0, False),
        (at(13), "10:00-14:00", 49.9, True),
        (at(14), "14:00-18:00", 40.0, False),
        (at(17), "14:00-18:00", 39.0, True),
        (at(18), "18:00-24:00", 80.0, False),
        (at(23, 59), "18:00-24:00", 80.5, True),
    ],
)
def test_traffic_pattern_by_utc_hour(
    moment: datetime, hours: str, share: float, unusual: bool
) -> None:
    band = rules.traffic_band(moment)
    assert band.hours == hours
    assert band.unusual(share) is unusual


def decide(**kwargs: object) -> rules.Decision:
    values: dict[str, object] = {
        "cpu": 50.0,
        "memory": 60.0,
        "latency_ms": 80.0,
        "pods": 5,
        "now": at(14),
    }
    values.update(kwargs)
    return rules.scaling_decision(**values)  # type: ignore[arg-type]


def test_scale_up_by_25_percent_or_at_least_two_pods() -> None:
    up = decide(cpu=70.1)
    assert (up.action, up.pods_now, up.pods_target) == ("scale_up", 5, 7)  # 25 % of 5 < 2
    assert up.reasons == ("CPU 70.1% > 70%",)
    big = decide(memory=80.5, pods=12)
    assert (big.action, big.pods_target) == ("scale_up", 15)  # 25 % of 12 = 3
    slow = decide(latency_ms=100.5, pods=10)
    assert (slow.action, slow.pods_target) == ("scale_up", 13)  # ceil(2.5)
    assert decide(cpu=70.0, memory=80.0, latency_ms=100.0).action == "hold"  # all at the limit


def test_scale_down_only_after_18_and_never_below_three() -> None:
    quiet = {"cpu": 29.9, "memory": 39.9}
    at_six = decide(**quiet, now=at(18, 0, 0))
    assert at_six.action == "hold"  # "time > 18:00": not at 18:00 sharp
    assert "only after 18:00" in at_six.reasons[0]
    after = decide(**quiet, now=at(18, 0, 1))
    assert (after.action, after.pods_now, after.pods_target) == ("scale_down", 5, 4)
    minimum = decide(**quiet, pods=3, now=at(21))
    assert (minimum.action, minimum.pods_target) == ("hold", 3)
    assert "minimum of 3" in minimum.reasons[0]
    four = decide(**quiet, pods=4, now=at(21))
    assert (four.action, four.pods_target) == ("scale_down", 3)
    assert decide(cpu=30.0, memory=39.0, now=at(21)).action == "hold"  # "< 30 %" strictly
    assert decide(cpu=29.0, memory=40.0, now=at(21)).action == "hold"


def test_scaling_unknown_without_data_but_scale_up_needs_only_one_reason() -> None:
    unknown = decide(cpu=None)
    assert unknown.action == "unknown"
    assert "CPU" in unknown.reasons[0]
    assert decide(cpu=None, memory=90.0).action == "scale_up"


def test_target_status() -> None:
    assert rules.target_status(12, 10) == "met"
    assert rules.target_status(9, 10) == "missed"
    assert rules.target_status(0, 0, at_most=True) == "met"
    assert rules.target_status(1, 0, at_most=True) == "missed"
    assert rules.target_status(5, None) == "no_target"
    assert rules.target_status(None, 3) == "unknown"
