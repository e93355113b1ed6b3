"""A state database that hangs (connections open, nothing answered) must not hang requests
nor eat memory: every request on the webhook's path answers 503 within `store_timeout`, the
bodies waiting for the journal are held to `journal_budget_bytes` (past it, 503 before the
body is read), and once the database answers again notifications are accepted again.

PostgreSQL behind `FreezingProxy`; the RSS this bounds is measured in `bench.hung_db`."""

import asyncio
import time
from typing import Any

from tests.adversarial.freezing_proxy import in_front_of
from tests.webhook.am import API, AUTH, am_alert, ingest, metric, notification, start
from webhook.handlers import WEBHOOK_KEY

BUDGET = 1_000_000
STORE_TIMEOUT = 1.0


def big_notification(index: int) -> dict[str, Any]:
    """~100 KB: one alert with a long description (a stack trace, say)."""
    alert = am_alert("WorkerCrashLoop", "warning", instance=f"worker-{index}")
    alert["annotations"]["description"] = "x" * 100_000
    return notification(alert)


async def timed(request: Any) -> tuple[int, float]:
    started = time.monotonic()
    async with request as response:
        await response.read()
        return response.status, time.monotonic() - started


async def test_a_frozen_database_gets_prompt_503s_and_bounded_memory(
    aiohttp_client, tmp_path, pg_url, clock
) -> None:  # type: ignore[no-untyped-def]
    proxy, url = await in_front_of(pg_url)
    client = await start(
        aiohttp_client,
        tmp_path,
        url,
        clock,
        store_timeout=STORE_TIMEOUT,
        journal_budget_bytes=BUDGET,
    )
    journal = client.app[WEBHOOK_KEY].journal
    try:
        first = await client.post("/api/v1/alerts", json=big_notification(0), headers=AUTH)
        assert first.status == 200
        proxy.freeze()
        most_waiting = 0
        requests: list[asyncio.Task[tuple[int, float]]] = []
        for index in range(1, 61):  # 30 requests a second of ~100 KB, for two seconds
            body = big_notification(index)
            requests.append(
                asyncio.create_task(timed(client.post("/api/v1/alerts", json=body, headers=AUTH)))
            )
            most_waiting = max(most_waiting, journal.waiting_bytes)
            await asyncio.sleep(1 / 30)
        reads = [
            asyncio.create_task(timed(client.get(path, headers=API)))
            for path in ("/api/v1/alerts", "/api/v1/maintenance", "/api/v1/deliveries")
        ]
        readyz = asyncio.create_task(timed(client.get("/readyz")))
        answers = await asyncio.gather(*requests)
        assert {status for status, _ in answers} == {503}
        assert max(seconds for _, seconds in answers) < STORE_TIMEOUT + 1.0
        assert min(seconds for _, seconds in answers) < 0.2  # over budget: before the body
        assert most_waiting <= BUDGET + 110_000
        for status, seconds in await asyncio.gather(*reads):
            assert status == 503 and seconds < STORE_TIMEOUT + 1.0
        status, seconds = await readyz
        assert status == 503 and seconds < 3.0
        rejected = "tensafe_webhook_rejected_requests_total"
        full = await metric(client, rejected, reason="journal_full")
        assert full is not None and full > 0
    finally:
        proxy.thaw()

    # The database answers again: the next notification is accepted (Alertmanager's retry).
    deadline = time.monotonic() + 30
    while True:
        response = await client.post("/api/v1/alerts", json=big_notification(99), headers=AUTH)
        if response.status == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert response.status == 200
    await ingest(client.app)
    listed = await client.get("/api/v1/alerts", params={"limit": 1000}, headers=API)
    instances = {a["labels"]["instance"] for a in (await listed.json())["alerts"]}
    assert {"worker-0", "worker-99"} <= instances
    await proxy.stop()
