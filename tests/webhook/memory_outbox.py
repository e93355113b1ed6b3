"""A stateful in-memory `Outbox` for the dispatcher tests: the same claim and lease rules as
the store (due, pending, lease free), recording every outcome, and noticing double sends."""

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from webhook.outbox import OUTCOME_UNKNOWN, Delivery, DeliveryState, Takeover, Target


@dataclass
class Row:
    delivery: Delivery
    state: DeliveryState = "pending"
    not_before: datetime | None = None
    leased_until: datetime | None = None
    attempts: int = 0
    error: str | None = None
    sent_status: int | None = None


@dataclass
class InMemoryOutbox:
    """A stateful stand-in for the store's outbox with the same claim/lease rules."""

    rows: dict[int, Row] = field(default_factory=dict)
    double_sends: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    """Deliveries whose lease was released (in order)."""
    sending: list[int] = field(default_factory=list)
    """Deliveries recorded as `sending` before their attempt (in order)."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever a delivery's state is recorded (tests wait on it)."""

    async def wait_until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not done():
                await self.changed.wait()
                self.changed.clear()

    def add(self, target: Target, destination: str, payload: dict[str, Any], now: datetime) -> int:
        delivery_id = len(self.rows) + 1
        delivery = Delivery(delivery_id, target, destination, payload, f"d-{delivery_id}", 0, now)
        self.rows[delivery_id] = Row(delivery, not_before=now)
        return delivery_id

    def states(self) -> dict[int, DeliveryState]:
        return {i: row.state for i, row in self.rows.items()}

    def _claimable(self, target: Target, now: datetime) -> list[Row]:
        return [
            row
            for row in self.rows.values()
            if row.delivery.target == target
            and row.state == "pending"
            and (row.not_before is None or row.not_before <= now)
            and (row.leased_until is None or row.leased_until <= now)
        ]

    async def claim(
        self,
        target: Target,
        limit: int,
        now: datetime,
        lease_seconds: float,
        destination: str | None = None,
    ) -> list[Delivery]:
        await asyncio.sleep(0)  # a real store yields here; let other claimers interleave
        due = [
            row
            for row in self._claimable(target, now)
            if destination is None or row.delivery.destination == destination
        ][:limit]
        for row in due:
            row.leased_until = now + timedelta(seconds=lease_seconds)
        return [
            replace(row.delivery, attempts=row.attempts, claimed_until=row.leased_until)
            for row in due
        ]

    async def start_sending(self, delivery: Delivery, now: datetime) -> bool:
        row = self.rows[delivery.id]
        if row.state != "pending" or row.leased_until != delivery.claimed_until:
            return False
        row.state = "sending"
        self.sending.append(delivery.id)
        return True

    async def due_destinations(self, target: Target, now: datetime) -> list[str]:
        await asyncio.sleep(0)
        return sorted(
            {
                row.delivery.destination
                for row in self.rows.values()
                if row.delivery.target == target
                and row.state == "pending"
                and (row.not_before is None or row.not_before <= now)
            }
        )

    async def take_over(self, target: Target, destination: str, now: datetime) -> Takeover:
        for row in self.rows.values():
            mine = (row.delivery.target, row.delivery.destination) == (target, destination)
            if mine and row.state == "sending":
                row.state, row.error, row.leased_until = "dead", OUTCOME_UNKNOWN, None
        taken = [
            row
            for row in self.rows.values()
            if (row.delivery.target, row.delivery.destination) == (target, destination)
            and row.state == "pending"
            and row.leased_until is not None
            and row.leased_until > now
        ]
        for row in taken:
            row.leased_until = None
        return Takeover(len(taken), None)

    async def release(self, delivery_ids: Sequence[int], now: datetime) -> None:
        for delivery_id in delivery_ids:
            row = self.rows[delivery_id]
            if row.state == "pending":
                row.leased_until = now
                self.released.append(delivery_id)
        self.changed.set()

    async def mark_sent(self, delivery_id: int, now: datetime, status: int) -> None:
        row = self.rows[delivery_id]
        if row.state == "sent":
            self.double_sends.append(delivery_id)
        row.state, row.sent_status, row.leased_until = "sent", status, None
        row.attempts += 1
        self.changed.set()

    async def mark_retry(
        self,
        delivery_id: int,
        now: datetime,
        not_before: datetime,
        error: str,
        status: int | None = None,
    ) -> None:
        row = self.rows[delivery_id]
        row.state, row.not_before, row.error, row.leased_until = "pending", not_before, error, None
        row.attempts += 1
        self.changed.set()

    async def mark_dead(
        self, delivery_id: int, now: datetime, error: str, status: int | None = None
    ) -> None:
        row = self.rows[delivery_id]
        row.state, row.error, row.leased_until = "dead", error, None
        row.attempts += 1
        self.changed.set()


@dataclass
class FlakyOutbox:
    """The in-memory outbox, unavailable for the first `failures` claims (a database blip)."""

    inner: InMemoryOutbox
    failures: int

    async def claim(
        self,
        target: Target,
        limit: int,
        now: datetime,
        lease_seconds: float,
        destination: str | None = None,
    ) -> list[Delivery]:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("database is restarting")
        return await self.inner.claim(target, limit, now, lease_seconds, destination)

    async def due_destinations(self, target: Target, now: datetime) -> list[str]:
        return await self.inner.due_destinations(target, now)

    async def release(self, delivery_ids: Sequence[int], now: datetime) -> None:
        await self.inner.release(delivery_ids, now)

    async def start_sending(self, delivery: Delivery, now: datetime) -> bool:
        return await self.inner.start_sending(delivery, now)

    async def take_over(self, target: Target, destination: str, now: datetime) -> Takeover:
        return await self.inner.take_over(target, destination, now)

    async def mark_sent(self, delivery_id: int, now: datetime, status: int) -> None:
        await self.inner.mark_sent(delivery_id, now, status)

    async def mark_retry(
        self,
        delivery_id: int,
        now: datetime,
        not_before: datetime,
        error: str,
        status: int | None = None,
    ) -> None:
        await self.inner.mark_retry(delivery_id, now, not_before, error, status)

    async def mark_dead(
        self, delivery_id: int, now: datetime, error: str, status: int | None = None
    ) -> None:
        await self.inner.mark_dead(delivery_id, now, error, status)
