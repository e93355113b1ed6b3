"""Alert storm: 10,000 distinct alerts posted as fast as the receiver takes them, then the
dispatcher draining the outbox into the Slack and PagerDuty fakes at their rate limits.

Half the groups are critical (a PagerDuty trigger and a Slack #incidents message per alert),
half warning (a Slack #alerts message). The fakes enforce the real limits (Slack 1 message/s
per webhook, PagerDuty 120 events/min per routing key) and answer 429 beyond them; a middleware
records every answer, so the drain rate and the absence of 429s are measured, not assumed.
Draining 5,000 Slack messages per webhook takes 5,000 s, so the drain is measured over a
bounded window; the totals are then checked in the store (nothing lost, nothing sent twice).
"""

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import serve
from bench.webhook_load import (
    ALERTS_PER_GROUP,
    SPAWN,
    TOKEN,
    Server,
    body_for,
    journal_pending,
    notification_template,
    webhook_settings,
)
from tensafe_ops.sandbox import pagerduty_events_api, slack_api
from tensafe_ops.sandbox.faults import Faults

ROUTING_KEY = "R0UT1NGKEY0000000000000000000042"
INCIDENTS, ALERTS = "T1/B1/incidents-secret", "T1/B2/alerts-secret"
Answer = tuple[str, int, float]
"""(path, status, monotonic time) of every answer a fake gave."""


def recorder(answers: list[Answer]) -> Any:
    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        answers.append((request.path, response.status, time.monotonic()))
        return response

    return record


async def _post_all(url: str, count: int, concurrency: int) -> tuple[dict[int, int], float]:
    """`count` notifications, alternately critical and warning, `concurrency` at a time;
    a 503 is retried as Alertmanager would (here at once)."""
    critical, warning = notification_template("critical"), notification_template("warning")
    statuses: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    queue = list(range(count))
    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker() -> None:
            while queue:
                n = queue.pop()
                body = body_for(critical if n % 2 == 0 else warning, 0xFFFF, n)
                while True:
                    async with session.post(url, data=body) as response:
                        await response.read()
                        statuses[response.status] += 1
                        if response.status != 503:
                            break

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return dict(statuses), time.perf_counter() - started


def _post_all_main(out: Any, url: str, count: int, concurrency: int) -> None:
    out.send(asyncio.run(_post_all(url, count, concurrency)))


def max_in_window(times: list[float], window: float) -> int:
    """The most events inside any `window` seconds (sliding)."""
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def storm(state_dir: Path, alerts: int, drain_seconds: float) -> None:
    answers: list[Answer] = []
    inbox = slack_api.SlackInbox(webhooks={INCIDENTS, ALERTS}, per_second=1)
    slack_app = slack_api.make_app(Faults(), inbox=inbox)
    pd_app = pagerduty_events_api.make_app(Faults(), routing_keys={ROUTING_KEY})
    for app in (slack_app, pd_app):
        app.middlewares.append(recorder(answers))
    slack_runner, slack_url = await serve(slack_app)
    pd_runner, pd_url = await serve(pd_app)
    destinations = {
        "slack": {
            "incidents": {"webhook_url": f"{slack_url}/services/{INCIDENTS}"},
            "alerts": {"webhook_url": f"{slack_url}/services/{ALERTS}"},
        },
        "pagerduty": {
            "default": {"routing_key": ROUTING_KEY, "events_url": f"{pd_url}/v2/enqueue"}
        },
        "zendesk": {"default": {"base_url": "http://127.0.0.1:9", "email": "o@x.io", "token": "z"}},
    }
    db_url = f"sqlite+aiosqlite:///{state_dir / 'state.db'}"
    settings = webhook_settings(state_dir, db_url, destinations)  # default rates and dispatch
    server = Server.start(settings, state_dir.parent / "storm.log")
    groups = alerts // ALERTS_PER_GROUP
    print(f"\nalert storm: {groups} notifications x {ALERTS_PER_GROUP} = {alerts} distinct alerts")
    receive, send = SPAWN.Pipe(duplex=False)
    client = SPAWN.Process(target=_post_all_main, args=(send, server.url, groups, 16))
    client.start()
    # Wait in a thread: the fakes live on this loop and must keep answering.
    loop = asyncio.get_running_loop()
    statuses, took = await loop.run_in_executor(None, receive.recv)
    await loop.run_in_executor(None, client.join)  # its exit can take ~0.4 s
    print(
        f"  accepted in {took:.1f} s ({groups / took:.0f} notifications/s while the dispatcher "
        f"drains): statuses {statuses}"
    )
    window_start = time.monotonic()
    ingested_after = await journal_empty(db_url, drain_seconds)
    if ingested_after is None:
        print(f"  journal: still holds notifications after {drain_seconds:.0f} s")
    else:
        print(f"  journal: every accepted notification ingested {ingested_after:.1f} s later")
    await asyncio.sleep(max(0.0, drain_seconds - (time.monotonic() - window_start)))
    window_end = time.monotonic()
    server.stop()
    await slack_runner.cleanup()
    await pd_runner.cleanup()
    report_drain(answers, window_start, window_end)
    await report_store(db_url, alerts)


async def journal_empty(db_url: str, limit: float) -> float | None:
    """Seconds until the server has ingested everything it accepted (polled every 0.1 s)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if not await journal_pending(db_url):
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    return None


def report_drain(answers: list[Answer], start: float, end: float) -> None:
    print(f"  drain, measured over {end - start:.0f} s after the storm was accepted:")
    limits = {
        f"/services/{INCIDENTS}": ("Slack #incidents", 1.0, 1),
        f"/services/{ALERTS}": ("Slack #alerts", 1.0, 1),
        "/v2/enqueue": ("PagerDuty", 60.0, 120),
    }
    for path, (name, window, limit) in limits.items():
        ok = sorted(t for p, s, t in answers if p == path and 200 <= s < 300)
        in_window = [t for t in ok if start <= t < end]
        throttled = sum(1 for p, s, _ in answers if p == path and s == 429)
        rate = len(in_window) / (end - start)
        per = "s" if window == 1.0 else "min"
        shown = rate if window == 1.0 else rate * 60
        print(
            f"    {name:<17} {shown:6.1f}/{per} (limit {limit}/{per}); most in any {window:.0f} s "
            f"window since the storm began: {max_in_window(ok, window)}; 429s: {throttled}; "
            f"sent since the storm began: {len(ok)}"
        )


async def report_store(db_url: str, alerts: int) -> None:
    engine = create_async_engine(db_url)
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.text("SELECT count(*) FROM webhook_alerts"))).scalar_one()
        rows = await conn.execute(
            sa.text("SELECT target, state, count(*) FROM webhook_deliveries GROUP BY 1, 2")
        )
        states = {f"{t}/{s}": n for t, s, n in rows}
        twice = await conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT idempotency_key FROM webhook_deliveries "
                "GROUP BY idempotency_key HAVING count(*) > 1) AS d"
            )
        )
        duplicated = twice.scalar_one()
    await engine.dispose()
    verdict = "OK" if stored == alerts else "LOST ALERTS"
    print(
        f"  store: {stored} of {alerts} alerts {verdict}; outbox {states}; keys twice: {duplicated}"
    )
