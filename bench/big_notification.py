"""Event-loop stalls from one very large notification (`python -m bench.big_notification`).

One notification of `--alerts` alerts (30,000: ~15 MB, so `body_limit_bytes` is raised for
it) is posted to the real app on SQLite, then ingested, while a ticker measures the longest
gap between its 1 ms wake-ups: how long the loop could answer nothing else. Ingest runs
twice, side by side: routing and writing in slices (`webhook.store.APPLY_SLICE`, as served)
and, as the baseline, in one piece.
"""

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

import webhook.store
from tests.conftest import FakeClock
from tests.webhook.am import AUTH, am_alert, notification, webhook_app
from webhook import INGESTER_KEY


class GapMeter:
    """The longest time between two 1 ms sleeps of a task on the loop."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "GapMeter":
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def _tick(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last)
            last = now


async def run(alerts: int, slice_size: int) -> dict[str, float]:
    webhook.store.APPLY_SLICE = slice_size
    with tempfile.TemporaryDirectory() as tmp:
        app = webhook_app(
            Path(tmp),
            f"sqlite+aiosqlite:///{tmp}/state.db",
            FakeClock(),
            body_limit_bytes=64 * 1024 * 1024,
            routes=[{"name": "w", "matchers": ['severity="warning"'], "targets": ["slack:alerts"]}],
        )
        async with TestClient(TestServer(app)) as client:
            await app[INGESTER_KEY].stop()  # ingest is measured on its own
            many = [am_alert("Flood", "warning", instance=f"i-{n}") for n in range(alerts)]
            body = json.dumps(notification(*many))
            async with GapMeter() as receiving:
                response = await client.post("/api/v1/alerts", data=body, headers=AUTH)
                assert response.status == 200, await response.text()
            started = time.perf_counter()
            async with GapMeter() as ingesting:
                await app[INGESTER_KEY].catch_up()
            took = time.perf_counter() - started
    return {"receive_gap": receiving.worst, "ingest_gap": ingesting.worst, "ingest_s": took}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    served = webhook.store.APPLY_SLICE
    rows: dict[str, list[dict[str, float]]] = {"sliced": [], "one piece": []}
    for _ in range(args.rounds):  # interleaved, so both see the same machine
        rows["sliced"].append(await run(args.alerts, served))
        rows["one piece"].append(await run(args.alerts, 10**9))
    for name, results in rows.items():
        best = {key: min(r[key] for r in results) for key in results[0]}
        print(
            f"{name}: worst loop gap while receiving {best['receive_gap'] * 1000:.0f} ms, "
            f"while ingesting {best['ingest_gap'] * 1000:.0f} ms (ingest {best['ingest_s']:.2f} s)"
        )


if __name__ == "__main__":
    asyncio.run(main())
