"""The simulated TenSafe world: one deterministic, seeded company.

Accounts are the join key; each upstream system's objects are kept in that API's own
JSON shapes (`world.stripe["subscriptions"]` are Stripe subscription objects, and so on),
so a world file is written in the shapes the real APIs return.
"""

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

Tier = Literal["starter", "pro", "enterprise"]
TIERS: tuple[Tier, ...] = ("starter", "pro", "enterprise")


@dataclass(frozen=True)
class WorldSize:
    accounts: int = 300
    tickets: int = 1500
    subscriptions: int = 250
    incidents: int = 120

    def scaled(self, factor: float) -> "WorldSize":
        return WorldSize(
            max(1, round(self.accounts * factor)),
            max(0, round(self.tickets * factor)),
            max(0, round(self.subscriptions * factor)),
            max(0, round(self.incidents * factor)),
        )


BENCH_SIZE = WorldSize(accounts=20_000, tickets=100_000, subscriptions=10_000, incidents=5_000)


@dataclass
class Account:
    id: str
    name: str
    tier: Tier
    created_at: datetime
    seats: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tier": self.tier,
            "created_at": self.created_at.isoformat(),
            "seats": self.seats,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Account":
        return cls(
            str(data["id"]),
            str(data["name"]),
            data.get("tier", "starter"),
            datetime.fromisoformat(str(data["created_at"])),
            int(data.get("seats", 1)),
        )


@dataclass
class World:
    now: datetime
    seed: int = 0
    accounts: list[Account] = field(default_factory=list)
    zendesk: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stripe: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pagerduty: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    usage: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "seed": self.seed,
            "accounts": [a.to_json() for a in self.accounts],
            "zendesk": self.zendesk,
            "stripe": self.stripe,
            "pagerduty": self.pagerduty,
            "usage": self.usage,
        }


_NAMES = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Aperture",
    "Vandelay",
    "Wonka",
    "Gringotts",
    "Monarch",
    "Oscorp",
    "Pied Piper",
)


def _accounts(rng: random.Random, size: WorldSize, now: datetime) -> list[Account]:
    accounts = []
    for index in range(size.accounts):
        tier: Tier = rng.choices(TIERS, weights=(60, 30, 10))[0]
        seats = {
            "starter": rng.randint(1, 5),
            "pro": rng.randint(5, 40),
            "enterprise": rng.randint(40, 400),
        }[tier]
        accounts.append(
            Account(
                id=f"acct_{index + 1:05d}",
                name=f"{rng.choice(_NAMES)} {index + 1}",
                tier=tier,
                created_at=now - timedelta(days=rng.randint(10, 900)),
                seats=seats,
            )
        )
    return accounts


def generate(seed: int = 42, size: WorldSize | None = None, now: datetime | None = None) -> World:
    """A deterministic world: the same seed, size and `now` always give the same objects."""
    from tensafe_ops.sandbox import pagerduty_world, stripe_world, usage_world, zendesk_world

    size = size or WorldSize()
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    rng = random.Random(seed)
    world = World(now=now, seed=seed, rng=rng)
    world.accounts = _accounts(rng, size, now)
    # Each system draws from its own RNG so adding objects to one leaves the others unchanged.
    zendesk_world.generate(world, random.Random(seed * 31 + 1), size)
    stripe_world.generate(world, random.Random(seed * 31 + 2), size)
    pagerduty_world.generate(world, random.Random(seed * 31 + 3), size)
    usage_world.generate(world, random.Random(seed * 31 + 4), size)
    return world


def advance(world: World, now: datetime) -> None:
    """Move the world to `now`: new tickets and replies, failing payments, acked incidents..."""
    from tensafe_ops.sandbox import pagerduty_world, stripe_world, usage_world, zendesk_world

    if now <= world.now:
        return
    previous, world.now = world.now, now
    for module in (zendesk_world, stripe_world, pagerduty_world, usage_world):
        module.advance(world, world.rng, previous)


def load(path: Path) -> World:
    """Load a world file (JSON or YAML; format in docs/world-file.md)."""
    text = path.read_text()
    data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a world file must be a mapping")
    now = data.get("now")
    world = World(
        now=datetime.fromisoformat(str(now)) if now else datetime.now(UTC).replace(microsecond=0),
        seed=int(data.get("seed", 0)),
    )
    world.rng = random.Random(world.seed)
    world.accounts = [Account.from_json(a) for a in data.get("accounts", [])]
    for system in ("zendesk", "stripe", "pagerduty", "usage"):
        section = data.get(system) or {}
        if not isinstance(section, dict):
            raise ValueError(f"{path}: '{system}' must be a mapping of object lists")
        setattr(world, system, {k: list(v) for k, v in section.items()})
    return world
