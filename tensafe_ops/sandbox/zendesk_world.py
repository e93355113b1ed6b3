"""zendesk objects of the simulated world (placeholder until its fake is built)."""

import random
from datetime import datetime

from tensafe_ops.sandbox.world import World, WorldSize


def generate(world: World, rng: random.Random, size: WorldSize) -> None:
    world.zendesk.setdefault("placeholder", [])


def advance(world: World, rng: random.Random, previous: datetime) -> None:
    return None
