"""The OpenAPI document against the live service: schemathesis generates requests for every
operation it lists and checks the answers (no 5xx, documented status codes and content types,
bodies matching the schemas), over a real socket, on the demo world with a real Prometheus.

schemathesis' pytest plugin does not load on pytest 9, so the schema is loaded with
`schemathesis.openapi.from_dict` and each generated case is sent with `call_and_validate`, in a
worker thread (its requests are blocking; the service runs on this test's event loop)."""

import asyncio
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from operations.openapi import full_spec
from tensafe_ops.sandbox.server import RunningWorld
from tests.operations.conftest import demo_with_prometheus, get
from tests.operations.stack import Product

EXAMPLES = 20
"""Cases per operation: the run stays well under a minute on two cores."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(spec: dict[str, Any], base_url: str) -> list[str]:
    """Every operation of `spec` with EXAMPLES generated cases; returns the operations run."""
    schema = schemathesis.openapi.from_dict(spec)
    ran = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)

        call()
        ran.append(f"{operation.method.upper()} {operation.path}")
    return ran


async def test_every_operation_answers_as_documented(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    async with demo_with_prometheus(aiohttp_client, demo_world, tmp_path, Product()) as demo:
        client = demo.client
        spec = await get(client, "/api/v1/openapi.json")
        assert spec["openapi"] == "3.1.0"
        documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
        # Everything the app serves under /api/v1 is documented (the PagerDuty webhook is
        # only served with signing secrets, which the demo does not configure).
        served = {
            (route.resource.canonical, route.method.lower())
            for route in client.app.router.routes()
            if route.resource is not None and route.method != "HEAD"
        }
        assert served - documented == set()
        assert ("/api/v1/pagerduty/webhook", "post") in {
            (p, m) for p, ops in full_spec()["paths"].items() for m in ops
        }
        base_url = str(client.make_url("")).rstrip("/")
        ran = await asyncio.to_thread(fuzz, spec, base_url)
        assert len(ran) == len(documented)
