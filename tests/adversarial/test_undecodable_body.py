"""A body that is not in the Content-Encoding it claims (corrupt gzip, gzip that is not) gets
a 400 saying so on every endpoint that reads a body, and leaves one plain warning in the log:
no traceback, and nothing from aiohttp ("Unhandled exception", "Error handling request"),
which would otherwise log one when it tries to drain the rest of the body after the answer."""

import asyncio
import gzip
import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from tensafe_ops.app import make_app
from tensafe_ops.settings import parse_settings
from tests.webhook.am import API, AUTH, am_alert, notification, signed, webhook_settings

VALID = json.dumps(notification(am_alert("UndecodableBody"))).encode()
GZIPPED = gzip.compress(VALID)
BODIES = {
    "not gzip": VALID,
    "corrupt gzip": GZIPPED[:10] + b"\xff" * 8 + GZIPPED[18:],  # an invalid deflate block
}
ENDPOINTS: list[tuple[str, dict[str, str]]] = [
    ("/api/v1/alerts", AUTH),
    ("/api/v1/pagerduty/webhook", {"X-PagerDuty-Signature": signed(VALID)}),
    ("/api/v1/alerts/1/ack", API),
    ("/api/v1/maintenance", API),
    ("/api/v1/events", API),
    ("/api/v1/checklist/today/done", API),
    ("/login", {"Content-Type": "application/x-www-form-urlencoded"}),
]


@pytest.fixture
async def client(aiohttp_client, tmp_path, state_db_url, clock) -> TestClient:  # type: ignore[no-untyped-def, type-arg]
    settings = webhook_settings(tmp_path, state_db_url)
    settings["operator"] = {"enabled": True, "pages": {"enabled": True}}
    app = make_app(parse_settings(settings), clock=clock)
    return await aiohttp_client(app)  # type: ignore[no-any-return]


async def served(client: TestClient) -> None:  # type: ignore[type-arg]
    """Until the server is done with every connection (aiohttp logs its complaints before)."""
    connections = client.server.runner.server.connections  # type: ignore[union-attr]
    for _ in range(200):
        if not connections:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server kept the connection")


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
@pytest.mark.parametrize(("path", "headers"), ENDPOINTS, ids=[p for p, _ in ENDPOINTS])
async def test_an_undecodable_body_gets_a_400_and_one_plain_log_line(
    client: Any, caplog: pytest.LogCaptureFixture, path: str, headers: dict[str, str], body: bytes
) -> None:
    with caplog.at_level(logging.DEBUG, logger="aiohttp"), capture_logs() as logs:
        response = await client.post(
            path, data=body, headers={**headers, "Content-Encoding": "gzip"}
        )
        answer = await response.json()
        await served(client)
    assert response.status == 400, answer
    assert answer["error"] == "body cannot be decoded" and answer["field"] == "<body>"
    assert answer["detail"] == "Can not decode content-encoding: gzip"
    complaints = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert complaints == []
    [line] = [e for e in logs if e["event"] == "request_body_undecodable"]
    assert line["log_level"] == "warning" and line["path"] == path
    assert line["content_encoding"] == "gzip"
    assert not {"exc_info", "exception"} & set(line)
    # Nothing else came of it: the service answers the next request as usual.
    assert (await client.get("/api/v1/alerts", headers=API)).status == 200
