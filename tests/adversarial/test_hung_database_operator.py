"""The operator API and the status pages on a hung state database: every request that reads or
writes the operator's state (the daily record, checklist marks, events) or the webhook's alerts
answers a clear 503 within `operator.store_timeout`, and answers as usual once the database
does. The webhook's own `store_timeout` is longer: the operator's reads of the webhook's store
wait for the operator's, not the webhook's.

PostgreSQL behind `FreezingProxy`, as in test_hung_database."""

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient

from tensafe_ops.app import make_app
from tensafe_ops.settings import parse_settings
from tests.adversarial.freezing_proxy import in_front_of
from tests.adversarial.test_hung_database import timed
from tests.webhook.am import API, webhook_settings

STORE_TIMEOUT = 1.0
WEBHOOK_STORE_TIMEOUT = 10.0
MARK = {"step": "morning.incidents_reviewed", "by": "ada"}
EVENT = {
    "start": "2026-11-28T10:00:00Z",
    "end": "2026-11-28T11:00:00Z",
    "kind": "demo",
    "note": "Acme demo",
}
# (method, path, JSON body): each touches the state database.
REQUESTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/status", None),
    ("GET", "/api/v1/checklist/today", None),
    ("GET", "/api/v1/daily/2026-11-20", None),
    ("GET", "/api/v1/events", None),
    ("POST", "/api/v1/checklist/today/done", MARK),
    ("POST", "/api/v1/events", EVENT),
    ("PATCH", "/api/v1/events/1", {"communicated": True}),
    ("DELETE", "/api/v1/events/2", None),
    ("POST", "/api/v1/daily/today", {}),
    ("GET", "/status", None),
]


async def answer(client: TestClient, method: str, path: str, body: Any) -> tuple[int, float]:  # type: ignore[type-arg]
    """Status and seconds; 0 and infinity for a request still hanging after 5 timeouts."""
    try:
        async with asyncio.timeout(5 * STORE_TIMEOUT):
            return await timed(client.request(method, path, json=body, headers=API))
    except TimeoutError:
        return 0, float("inf")


async def test_a_frozen_database_gets_prompt_503s_from_the_operator_api(
    aiohttp_client, tmp_path, pg_url, clock
) -> None:  # type: ignore[no-untyped-def]
    proxy, url = await in_front_of(pg_url)
    settings = webhook_settings(tmp_path, url, store_timeout=WEBHOOK_STORE_TIMEOUT)
    settings["operator"] = {"enabled": True, "store_timeout": STORE_TIMEOUT}
    client: TestClient = await aiohttp_client(make_app(parse_settings(settings), clock=clock))  # type: ignore[type-arg]
    try:
        for _ in range(2):  # events 1 and 2, for the PATCH and the DELETE
            response = await client.post("/api/v1/events", json=EVENT, headers=API)
            assert response.status == 201, await response.text()
        proxy.freeze()
        answers = await asyncio.gather(*(answer(client, *request) for request in REQUESTS))
        late = {
            request[1]: (status, round(seconds, 1))
            for request, (status, seconds) in zip(REQUESTS, answers, strict=True)
            # Prompt means bounded by the timeout, not instant: nine requests at once on a
            # busy 2-core machine took 2.1 s; a hanging one would take 5 timeouts.
            if status != 503 or seconds > 2 * STORE_TIMEOUT + 1.0
        }
        assert late == {}
        response = await client.get("/api/v1/events", headers=API)
        assert (await response.json())["error"] == "state store unavailable, retry later"
    finally:
        proxy.thaw()

    # The database answers again: so does every endpoint.
    deadline = time.monotonic() + 30
    while (await client.get("/api/v1/events", headers=API)).status != 200:
        assert time.monotonic() < deadline, "the operator API did not recover"
        await asyncio.sleep(0.5)
    for method, path, body in REQUESTS:
        status, _ = await answer(client, method, path, body)
        assert status in (200, 201, 404), (path, status)  # 404: a past day never recorded
    await proxy.stop()
