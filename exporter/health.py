"""Customer health scoring: pure functions over the per-account facts of the other sources.

Score = 100 minus the penalties of the churn signals that apply, floored at 0. Each
account keeps the list of signals that lowered its score, so operators can see why.

Signals (weights from `HealthConfig.weights`, defaults in brackets):
- `no_api_calls_7d` [45]: the last API call is 7 days old or older, or the account never
  called the API at all (a usage row with `last_api_call = None`).
- `no_api_calls_3d` [20]: the last API call is at least 3 and less than 7 days old.
- `tickets_rising` [20]: tickets created in the last 14 days >= `tickets_rising_ratio` x the
  previous 14 days, and >= `tickets_rising_min`.
- `ticket_breaching_sla` [10]: an add-on to `tickets_rising` (the issue's "plus -10"): only
  when tickets are rising AND at least one of the account's open tickets breaches its SLA.
- `payment_failed` [30]: a Stripe subscription is past_due or a payment failed in 24h.
- `seats_removed` [15]: seats were removed in the last 30 days, less than
  `seats_removed_share` of the seats at the start of the window.
- `seats_removed_quarter` [25]: replaces `seats_removed` when the removed share is
  >= `seats_removed_share` (default 25%). Seats at the start of the window are estimated
  as current seats + seats removed in the window (seats added in the window are ignored).

Bands: score < `at_risk_below` -> at_risk; < `watch_below` -> watch; else healthy.

The account universe is the union of account ids across the facts. An account missing
from a source simply lacks that source's signals (no usage row -> no API-call signal).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from exporter.config import HealthConfig

Band = Literal["at_risk", "watch", "healthy"]
BANDS: tuple[Band, ...] = ("at_risk", "watch", "healthy")

Signal = Literal[
    "no_api_calls_7d",
    "no_api_calls_3d",
    "tickets_rising",
    "ticket_breaching_sla",
    "payment_failed",
    "seats_removed",
    "seats_removed_quarter",
]
SIGNALS: tuple[Signal, ...] = (
    "no_api_calls_7d",
    "no_api_calls_3d",
    "tickets_rising",
    "ticket_breaching_sla",
    "payment_failed",
    "seats_removed",
    "seats_removed_quarter",
)

Facts = Mapping[str, Mapping[str, Any]]
"""Per-account facts of one source, keyed by product account id."""

_INACTIVE_LONG = timedelta(days=7)
_INACTIVE_SHORT = timedelta(days=3)


@dataclass(frozen=True)
class Penalty:
    signal: Signal
    points: int


@dataclass(frozen=True)
class Health:
    account: str
    score: int
    band: Band
    penalties: tuple[Penalty, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "band": self.band,
            "signals": [{"signal": p.signal, "penalty": p.points} for p in self.penalties],
        }


def band_for(score: int, cfg: HealthConfig) -> Band:
    if score < cfg.at_risk_below:
        return "at_risk"
    if score < cfg.watch_below:
        return "watch"
    return "healthy"


def usage_signals(usage: Mapping[str, Any], now: datetime) -> list[Signal]:
    """API inactivity from a usage fact; a never-called account counts as 7+ days."""
    last_call = usage.get("last_api_call")
    if last_call is None:
        return ["no_api_calls_7d"]
    idle = now - datetime.fromtimestamp(float(last_call), tz=now.tzinfo)
    if idle >= _INACTIVE_LONG:
        return ["no_api_calls_7d"]
    if idle >= _INACTIVE_SHORT:
        return ["no_api_calls_3d"]
    return []


def seat_signals(usage: Mapping[str, Any], cfg: HealthConfig) -> list[Signal]:
    removed = int(usage.get("seats_removed_30d") or 0)
    if removed <= 0:
        return []
    at_window_start = int(usage.get("seats") or 0) + removed
    if removed / at_window_start >= cfg.seats_removed_share:
        return ["seats_removed_quarter"]
    return ["seats_removed"]


def support_signals(zendesk: Mapping[str, Any], cfg: HealthConfig) -> list[Signal]:
    recent = int(zendesk.get("tickets_14d") or 0)
    previous = int(zendesk.get("tickets_prev_14d") or 0)
    rising = recent >= cfg.tickets_rising_ratio * previous and recent >= cfg.tickets_rising_min
    if not rising:
        return []
    if int(zendesk.get("open_breaching") or 0) > 0:
        return ["tickets_rising", "ticket_breaching_sla"]
    return ["tickets_rising"]


def billing_signals(stripe: Mapping[str, Any]) -> list[Signal]:
    if stripe.get("past_due") or stripe.get("payment_failed_24h"):
        return ["payment_failed"]
    return []


def weight(signal: Signal, cfg: HealthConfig) -> int:
    points: int = getattr(cfg.weights, signal)
    return points


def score_account(
    account: str,
    *,
    zendesk: Mapping[str, Any] | None,
    stripe: Mapping[str, Any] | None,
    usage: Mapping[str, Any] | None,
    cfg: HealthConfig,
    now: datetime,
) -> Health:
    """One account's score from whichever sources know it (`None`: that source lacks it)."""
    signals: list[Signal] = []
    if usage is not None:
        signals += usage_signals(usage, now) + seat_signals(usage, cfg)
    if zendesk is not None:
        signals += support_signals(zendesk, cfg)
    if stripe is not None:
        signals += billing_signals(stripe)
    # A weight of 0 switches a signal off, so it is not listed as a reason either.
    penalties = tuple(Penalty(s, points) for s in signals if (points := weight(s, cfg)) != 0)
    score = min(100, max(0, 100 - sum(p.points for p in penalties)))
    return Health(account, score, band_for(score, cfg), penalties)


def score_accounts(
    *,
    zendesk: Facts | None,
    stripe: Facts | None,
    usage: Facts | None,
    cfg: HealthConfig,
    now: datetime,
) -> dict[str, Health]:
    """Scores for the union of account ids across the given facts, sorted by account id."""
    sources = [facts for facts in (zendesk, stripe, usage) if facts is not None]
    accounts = sorted({account for facts in sources for account in facts})
    return {
        account: score_account(
            account,
            zendesk=None if zendesk is None else zendesk.get(account),
            stripe=None if stripe is None else stripe.get(account),
            usage=None if usage is None else usage.get(account),
            cfg=cfg,
            now=now,
        )
        for account in accounts
    }
