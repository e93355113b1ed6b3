"""Fake stripe HTTP API over the simulated world (placeholder until built)."""

from aiohttp import web

from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.world import World


def make_app(world: World, faults: Faults, *, credentials: "dict[str, str]") -> web.Application:
    return web.Application()
