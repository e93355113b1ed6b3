"""MRR movements since the start of the UTC day (pure functions over per-customer MRR maps).

Each customer is compared between the day's baseline (its MRR at the start of the UTC day)
and now, all in the reporting currency:

- new:          0 at the baseline, > 0 now, and never paying before today
- reactivation: 0 at the baseline, > 0 now, and paying at some point before today
- expansion:    > 0 at both, higher now (the increase)
- contraction:  > 0 at both, lower now (the decrease)
- churn:        > 0 at the baseline, 0 now (the whole baseline MRR)

So `sum(current) - sum(baseline) = new + reactivation + expansion - contraction - churn`.
A customer who starts and stops within the same day moves nothing.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time

KINDS = ("new", "expansion", "contraction", "churn", "reactivation")

EPSILON = 1e-9
"""Amounts at or below this are zero (float noise from discounts and conversion)."""


@dataclass(frozen=True)
class Movements:
    new: float = 0.0
    expansion: float = 0.0
    contraction: float = 0.0
    churn: float = 0.0
    reactivation: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {kind: getattr(self, kind) for kind in KINDS}

    @property
    def net(self) -> float:
        return self.new + self.reactivation + self.expansion - self.contraction - self.churn


def day_start(now: datetime) -> datetime:
    """Midnight UTC of `now`'s day (`now` must be timezone-aware)."""
    return datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)


def movements(
    baseline: Mapping[str, float],
    current: Mapping[str, float],
    paid_before: Iterable[str],
) -> Movements:
    """Movements from `baseline` to `current`; `paid_before` = customers who paid before today."""
    earlier = set(paid_before)
    totals = dict.fromkeys(KINDS, 0.0)
    for customer in baseline.keys() | current.keys():
        before = baseline.get(customer, 0.0)
        after = current.get(customer, 0.0)
        if before <= EPSILON and after > EPSILON:
            totals["reactivation" if customer in earlier else "new"] += after
        elif before > EPSILON and after <= EPSILON:
            totals["churn"] += before
        elif before > EPSILON and after - before > EPSILON:
            totals["expansion"] += after - before
        elif before > EPSILON and before - after > EPSILON:
            totals["contraction"] += before - after
    return Movements(**totals)


def paying(mrr_by_customer: Mapping[str, float]) -> set[str]:
    """Customers with MRR above zero."""
    return {customer for customer, amount in mrr_by_customer.items() if amount > EPSILON}
