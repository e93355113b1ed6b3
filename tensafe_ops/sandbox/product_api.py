"""HTTP face of the simulated TenSafe API (contract in docs/product-sim.md).

- `GET /metrics` — the API's own series (`tensafe_http_requests_total`, latency histogram,
  queue depth, DP epsilon, HE operations, training jobs, signups); 503 while `api_down`,
  so the scrape fails and Prometheus records `up == 0`, as for a real dead API.
- `GET /cluster/metrics` — what the cluster's exporters serve about it (pods ready, container
  CPU and memory, GPU utilisation, disk, network, certificate expiry, database and Redis up);
  it stays up when the API is down.
- `GET /_sandbox/scenario` — the scenario in force; `PATCH` changes the fields given,
  `PUT` replaces it (fields left out take their defaults). Unknown fields and out-of-range
  values are refused with 400 `{"error", "field", "detail"}`.
"""

import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from tensafe_ops.metrics import registry_of
from tensafe_ops.sandbox import product
from tensafe_ops.sandbox.product import ProductState, Scenario
from tensafe_ops.sandbox.received import inspectable

PRODUCT_STATE_KEY = web.AppKey("product_state", ProductState)


def exposition(families: Iterable[Metric]) -> bytes:
    body: bytes = generate_latest(registry_of(families))
    return body


def _error(exc: ValidationError) -> web.Response:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "<body>"
    return web.json_response(
        {"error": "invalid scenario", "field": where, "detail": first["msg"]}, status=400
    )


def make_app(state: ProductState, *, clock: Callable[[], float] = time.time) -> web.Application:
    """The simulated API over `state`; `clock` gives Unix time (the counters integrate it)."""

    async def api_metrics(_request: web.Request) -> web.Response:
        if state.scenario.api_down:
            return web.Response(status=503, text="service unavailable (api_down)")
        product.advance(state, clock())
        return web.Response(body=exposition(product.api_families(state)), headers=_TEXT)

    async def cluster_metrics(_request: web.Request) -> web.Response:
        now = clock()
        product.advance(state, now)
        return web.Response(body=exposition(product.cluster_families(state, now)), headers=_TEXT)

    async def get_scenario(_request: web.Request) -> web.Response:
        return web.json_response(state.scenario.model_dump())

    async def change_scenario(request: web.Request) -> web.Response:
        try:
            body: Any = await request.json()
        except ValueError:
            return web.json_response(
                {"error": "invalid scenario", "field": "<body>", "detail": "not JSON"}, status=400
            )
        if not isinstance(body, dict):
            return web.json_response(
                {"error": "invalid scenario", "field": "<body>", "detail": "expected an object"},
                status=400,
            )
        base = state.scenario.model_dump() if request.method == "PATCH" else {}
        try:
            scenario = Scenario.model_validate({**base, **body})
        except ValidationError as exc:
            return _error(exc)
        product.set_scenario(state, scenario, clock())
        return web.json_response(scenario.model_dump())

    app = web.Application()
    inspectable(app)
    app[PRODUCT_STATE_KEY] = state
    app.router.add_get("/metrics", api_metrics)
    app.router.add_get("/cluster/metrics", cluster_metrics)
    app.router.add_get("/_sandbox/scenario", get_scenario)
    app.router.add_patch("/_sandbox/scenario", change_scenario)
    app.router.add_put("/_sandbox/scenario", change_scenario)
    return app


_TEXT = {"Content-Type": CONTENT_TYPE_LATEST}
