"""The demo world (the sandbox's simulated upstreams) and the service on it with the operator
API, as `tensafe-ops serve --demo` runs them; optionally a real Prometheus."""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tensafe_ops.app import make_app
from tensafe_ops.clock import Clock, utcnow
from tensafe_ops.sandbox.server import RunningWorld
from tensafe_ops.settings import parse_settings
from tests.operations.stack import Product, RunningPrometheus, product_and_prometheus
from tests.test_demo import SOURCES, demo_world, scrape_until_up

__all__ = ["demo_world"]


def demo_app(
    world: RunningWorld,
    tmp_path: Path,
    clock: Clock = utcnow,
    webhook: dict[str, Any] | None = None,
    **operator: Any,
) -> web.Application:
    """`webhook`: settings of the webhook's own (e.g. its ingest), over the fast dispatch."""
    fast = {"interval": 2.0}
    settings = parse_settings(
        {
            "server": {"state_dir": str(tmp_path / "state")},
            "exporter": {name: fast for name in SOURCES},
            "webhook": {"dispatch": {"poll_interval": 0.2}, **(webhook or {})},
            "operator": {"record_check_interval": 3600, **operator},
        }
    )
    return make_app(world.configure(settings), clock=clock)


async def demo_client(
    aiohttp_client: Any,
    world: RunningWorld,
    tmp_path: Path,
    webhook: dict[str, Any] | None = None,
    **operator: Any,
) -> TestClient:  # type: ignore[type-arg]
    app = demo_app(world, tmp_path, webhook=webhook, **operator)
    client: TestClient = await aiohttp_client(app)  # type: ignore[type-arg]
    await scrape_until_up(client)
    return client


class DemoOnPrometheus(NamedTuple):
    client: TestClient  # type: ignore[type-arg]
    prometheus: RunningPrometheus


@contextlib.asynccontextmanager
async def demo_with_prometheus(
    aiohttp_client: Any, world: RunningWorld, tmp_path: Path, product: Product, **operator: Any
) -> AsyncIterator[DemoOnPrometheus]:
    """The demo service whose operator API asks a real Prometheus that scrapes `product`."""
    async with product_and_prometheus(tmp_path / "prometheus", product) as prometheus:
        client = await demo_client(
            aiohttp_client, world, tmp_path, prometheus_url=prometheus.url, **operator
        )
        yield DemoOnPrometheus(client, prometheus)


async def metric_values(client: TestClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:  # type: ignore[type-arg]
    """Samples of `name` on the service's own /metrics, by sorted label pairs."""
    text = await (await client.get("/metrics")).text()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def get(client: TestClient, path: str, status: int = 200, **kw: Any) -> Any:  # type: ignore[type-arg]
    response = await client.get(path, **kw)
    assert response.status == status, await response.text()
    return await response.json()


async def metric_value(client: TestClient, name: str) -> float:  # type: ignore[type-arg]
    """The one sample of an unlabelled metric."""
    (value,) = (await metric_values(client, name)).values()
    return value
