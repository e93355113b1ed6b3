"""usage objects of the simulated world (placeholder until its fake is built)."""

import random
from datetime import datetime

from tensafe_ops.sandbox.world import World, WorldSize


def generate(world: World, rng: random.Random, size: WorldSize) -> None:
    world.usage.setdefault("placeholder", [])


def advance(world: World, rng: random.Random, previous: datetime) -> None:
    return None


async def write_database(world: World, url: str) -> None:
    """Create the product usage schema at `url` and load the world's usage rows."""
    return None
