"""Health scoring, signal by signal, at the boundaries of each rule and band."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exporter.config import HealthConfig, HealthWeights
from exporter.health import band_for, score_account, score_accounts

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CFG = HealthConfig()


def usage(
    idle: timedelta | None = timedelta(hours=1), seats: int = 10, removed: int = 0
) -> dict[str, Any]:
    last = None if idle is None else (NOW - idle).timestamp()
    return {
        "last_api_call": last,
        "seats": seats,
        "seats_removed_30d": removed,
        "tier": "pro",
        "name": "Acme 1",
    }


def tickets(recent: int, previous: int, breaching: int = 0) -> dict[str, Any]:
    return {
        "tickets_14d": recent,
        "tickets_prev_14d": previous,
        "open_breaching": breaching,
        "open": breaching,
    }


def stripe(past_due: bool = False, failed: bool = False) -> dict[str, Any]:
    return {
        "mrr": 500.0,
        "past_due": past_due,
        "payment_failed_24h": failed,
        "enterprise": False,
        "plan": "pro",
    }


def signals_of(
    *,
    zendesk: dict[str, Any] | None = None,
    billing: dict[str, Any] | None = None,
    use: dict[str, Any] | None = None,
    cfg: HealthConfig = CFG,
) -> list[tuple[str, int]]:
    health = score_account("acct_1", zendesk=zendesk, stripe=billing, usage=use, cfg=cfg, now=NOW)
    assert health.score == max(0, 100 - sum(p.points for p in health.penalties))
    return [(p.signal, p.points) for p in health.penalties]


@pytest.mark.parametrize(
    ("idle", "expected"),
    [
        (timedelta(days=3) - timedelta(seconds=1), []),
        (timedelta(days=3), [("no_api_calls_3d", 20)]),
        (timedelta(days=7) - timedelta(seconds=1), [("no_api_calls_3d", 20)]),
        (timedelta(days=7), [("no_api_calls_7d", 45)]),
        (timedelta(days=40), [("no_api_calls_7d", 45)]),
        (None, [("no_api_calls_7d", 45)]),  # never called counts as 7+ days idle
    ],
)
def test_api_inactivity_boundaries(idle: timedelta | None, expected: list[tuple[str, int]]) -> None:
    assert signals_of(use=usage(idle)) == expected


@pytest.mark.parametrize(
    ("recent", "previous", "breaching", "expected"),
    [
        (3, 1, 0, [("tickets_rising", 20)]),
        (3, 0, 0, [("tickets_rising", 20)]),
        (2, 0, 0, []),  # below the minimum of 3
        (5, 3, 0, []),  # 5 < 2 x 3
        (6, 3, 0, [("tickets_rising", 20)]),  # exactly 2 x
        (6, 3, 1, [("tickets_rising", 20), ("ticket_breaching_sla", 10)]),
        (5, 3, 2, []),  # a breach alone, without rising tickets, is not a churn signal
    ],
)
def test_support_tickets_rising_and_sla_add_on(
    recent: int, previous: int, breaching: int, expected: list[tuple[str, int]]
) -> None:
    assert signals_of(zendesk=tickets(recent, previous, breaching)) == expected


@pytest.mark.parametrize(
    ("billing", "expected"),
    [
        (stripe(), []),
        (stripe(past_due=True), [("payment_failed", 30)]),
        (stripe(failed=True), [("payment_failed", 30)]),
        (stripe(past_due=True, failed=True), [("payment_failed", 30)]),  # one signal, not two
    ],
)
def test_failed_payment(billing: dict[str, Any], expected: list[tuple[str, int]]) -> None:
    assert signals_of(billing=billing) == expected


@pytest.mark.parametrize(
    ("seats", "removed", "expected"),
    [
        (10, 0, []),
        (10, 1, [("seats_removed", 15)]),  # 1 of 11 at the window start
        (4, 1, [("seats_removed", 15)]),  # 1 of 5 = 20%
        (3, 1, [("seats_removed_quarter", 25)]),  # 1 of 4 = exactly 25%
        (0, 2, [("seats_removed_quarter", 25)]),  # everyone removed
    ],
)
def test_seats_removed_share_of_window_start(
    seats: int, removed: int, expected: list[tuple[str, int]]
) -> None:
    assert signals_of(use=usage(seats=seats, removed=removed)) == expected


def test_penalties_add_up_and_floor_at_zero() -> None:
    health = score_account(
        "acct_1",
        zendesk=tickets(9, 1, breaching=1),
        stripe=stripe(past_due=True),
        usage=usage(None, seats=1, removed=3),
        cfg=CFG,
        now=NOW,
    )
    # 45 + 25 + 20 + 10 + 30 = 130 points of penalties
    assert health.score == 0
    assert health.band == "at_risk"
    assert health.to_json() == {
        "score": 0,
        "band": "at_risk",
        "signals": [
            {"signal": "no_api_calls_7d", "penalty": 45},
            {"signal": "seats_removed_quarter", "penalty": 25},
            {"signal": "tickets_rising", "penalty": 20},
            {"signal": "ticket_breaching_sla", "penalty": 10},
            {"signal": "payment_failed", "penalty": 30},
        ],
    }


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (0, "at_risk"),
        (39, "at_risk"),
        (40, "watch"),
        (69, "watch"),
        (70, "healthy"),
        (100, "healthy"),
    ],
)
def test_band_boundaries(score: int, band: str) -> None:
    assert band_for(score, CFG) == band


def test_weights_and_bands_are_configurable() -> None:
    cfg = HealthConfig(
        weights=HealthWeights(no_api_calls_3d=35, payment_failed=0),
        at_risk_below=50,
        watch_below=90,
        tickets_rising_ratio=1.5,
        tickets_rising_min=2,
        seats_removed_share=0.5,
    )
    health = score_account(
        "acct_1",
        zendesk=tickets(3, 2),
        stripe=stripe(past_due=True),
        usage=usage(timedelta(days=4), seats=3, removed=2),
        cfg=cfg,
        now=NOW,
    )
    # 35 (idle 4 days) + 15 (2 of 5 seats < 50%) + 20 (3 >= 1.5 x 2); payment weight 0 is off
    assert [(p.signal, p.points) for p in health.penalties] == [
        ("no_api_calls_3d", 35),
        ("seats_removed", 15),
        ("tickets_rising", 20),
    ]
    assert (health.score, health.band) == (30, "at_risk")


def test_account_universe_is_the_union_of_all_facts() -> None:
    scores = score_accounts(
        zendesk={"acct_z": tickets(4, 0)},
        stripe={"acct_s": stripe(failed=True), "acct_u": stripe()},
        usage={"acct_u": usage(timedelta(days=10))},
        cfg=CFG,
        now=NOW,
    )
    assert {a: (h.score, h.band) for a, h in scores.items()} == {
        "acct_s": (70, "healthy"),
        "acct_u": (55, "watch"),
        "acct_z": (80, "healthy"),  # known only to Zendesk: scored on support alone
    }


def test_missing_sources_contribute_no_signals() -> None:
    scores = score_accounts(zendesk=None, stripe=None, usage={"acct_u": usage()}, cfg=CFG, now=NOW)
    assert scores["acct_u"].score == 100
    assert scores["acct_u"].penalties == ()
