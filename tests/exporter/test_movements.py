"""MRR movements from the day's baseline to now, case by case."""

from datetime import UTC, datetime

import pytest

from exporter.movements import Movements, day_start, movements, paying


def test_new_customer() -> None:
    assert movements({}, {"a": 100.0}, paid_before=set()) == Movements(new=100.0)


def test_reactivation_needs_a_payment_before_today() -> None:
    # "a" paid last month, churned, pays again today
    assert movements({"a": 0.0}, {"a": 80.0}, paid_before={"a"}) == Movements(reactivation=80.0)


def test_expansion_and_contraction() -> None:
    result = movements({"a": 100.0, "b": 100.0}, {"a": 150.0, "b": 60.0}, paid_before={"a", "b"})
    assert result == Movements(expansion=50.0, contraction=40.0)


def test_churn_counts_the_whole_baseline() -> None:
    assert movements({"a": 120.0}, {}, paid_before={"a"}) == Movements(churn=120.0)
    assert movements({"a": 120.0}, {"a": 0.0}, paid_before={"a"}) == Movements(churn=120.0)


def test_unchanged_and_same_day_flicker_move_nothing() -> None:
    assert movements({"a": 100.0}, {"a": 100.0}, paid_before={"a"}) == Movements()
    assert movements({}, {"b": 0.0}, paid_before=set()) == Movements()


def test_net_equals_the_change_in_total() -> None:
    baseline = {"a": 100.0, "b": 50.0, "c": 30.0}
    current = {"a": 130.0, "b": 20.0, "d": 70.0, "e": 10.0}
    result = movements(baseline, current, paid_before={"a", "b", "c", "e"})
    # a +30 expansion, b -30 contraction, c -30 churn, d +70 new, e +10 reactivation
    assert result == Movements(
        new=70.0, expansion=30.0, contraction=30.0, churn=30.0, reactivation=10.0
    )
    assert result.net == pytest.approx(sum(current.values()) - sum(baseline.values()))


def test_day_start_and_paying() -> None:
    now = datetime(2026, 11, 27, 16, 5, tzinfo=UTC)
    assert day_start(now) == datetime(2026, 11, 27, tzinfo=UTC)
    assert paying({"a": 1.0, "b": 0.0}) == {"a"}
