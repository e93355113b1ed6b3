"""The demo world and the service on it, pages on and behind credentials, with a real Prometheus
scraping the world's simulated TenSafe API: all of it in one background thread with its own
event loop, so synchronous Playwright tests (and `tests.pages.screenshots`) can drive a browser
against it, one world and one browser per module.

The world carries hostile strings (a ticket subject and an account name with markup) and a
scenario with warning tiles; `Served` fires alerts (one already past its respond-by) and stores
earlier days' records for the customers page's trend.
"""

import asyncio
import base64
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from operations import OPERATIONS_KEY, views
from tensafe_ops.app import make_app
from tensafe_ops.auth import BasicAuth, Credentials
from tensafe_ops.sandbox import product, zendesk_world
from tensafe_ops.sandbox import world as sandbox_world
from tensafe_ops.sandbox.product import Scenario
from tensafe_ops.sandbox.server import RunningWorld, start_world
from tensafe_ops.sandbox.zendesk_world import fresh_ticket
from tensafe_ops.settings import parse_settings
from tests.operations.stack import RunningPrometheus, prometheus_with_history

T = TypeVar("T")
SOURCES = ("zendesk", "pagerduty", "stripe", "usage", "health")
API_TOKEN = "pages-test-api-token"
READ_TOKEN = "pages-test-read-token"
BASIC_USER, BASIC_PASSWORD = "ops", "pages-test-password"
HOSTILE_SUBJECT = (
    '<script>window.__pwned = 1</script><img src="/x-pwned" onerror="window.__pwned = 2">'
    ' Refund & "cancel" now'
)
HOSTILE_NAME = '<b onmouseover="window.__pwned = 3">Evil & Sons</b>'
HOSTILE_SUMMARY = "</td><script>window.__pwned = 4</script> disk full"
SCENARIO = Scenario(gpu_percent=85.0, cpu_percent=75.0)
"""GPU utilisation in its warning band (80-90 %): the light is yellow, not green."""
TREND = {1: (1, 1.10, 0.99), 2: (3, 1.40, 0.985), 4: (2, 1.25, 0.97), 5: (0, 0.90, 0.96)}
"""Days ago -> (at-risk customers more than today, MRR at risk and total MRR as multiples of
today's) of the stored records; 3 days ago has none (a gap in the line)."""


class ShiftedClock:
    """The wall clock, moved by `offset` (an alert received 20 minutes "ago")."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def demo_world(*, hostile: bool, seed: int = 7) -> sandbox_world.World:
    world = sandbox_world.generate(seed=seed, size=sandbox_world.WorldSize().scaled(0.5))
    if hostile:
        add_hostile_strings(world)
    return world


def add_hostile_strings(world: sandbox_world.World) -> None:
    """Markup in an account's name and in the subject of that account's oldest open P1."""
    zendesk = world.zendesk
    account = world.usage["accounts"][1]  # [0] has a second organization (a join issue)
    account["name"] = HOSTILE_NAME
    org = next(o for o in zendesk["organizations"] if o.get("external_id") == account["account_id"])
    requester = next(u for u in zendesk["users"] if u.get("organization_id") == org["id"])
    ticket_id = max(t["id"] for t in zendesk["tickets"]) + 1
    now = world.now.timestamp()
    created = now - 90 * 86400  # the oldest open P1: first on the board
    ticket, metric = fresh_ticket(world.rng, ticket_id, created, (requester["id"], org["id"]))
    ticket.update(
        priority="urgent",
        subject=HOSTILE_SUBJECT,
        raw_subject=HOSTILE_SUBJECT,
        updated_at=zendesk_world.iso(now - 600),
        generated_timestamp=int(now - 600),
    )
    zendesk["tickets"].append(ticket)
    zendesk["ticket_metrics"].append(metric)


HISTORY = 65 * 60.0
"""Backfilled before the live scrapes: an hour for `rate(...[1h])`, five minutes for the rest."""
STEP = 15.0
JOBS = {"tensafe-api": "/metrics", "tensafe-cluster": "/cluster/metrics"}


def _series(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={json.dumps(value)}" for key, value in sorted(labels.items()))


def history(state: product.ProductState, end: float, instance: str) -> str:
    """OpenMetrics of the simulated API from `end - HISTORY` to `end`, every STEP seconds,
    integrating a copy of its state: the live state, rewound to the same start, reaches the
    same counters at `end`, so history and live scrapes are one series."""
    copy = product.new_state(end - HISTORY, state.scenario)
    rows: dict[tuple[str, str], list[str]] = {}
    at = end - HISTORY
    while at <= end:
        product.advance(copy, at)
        scraped = {
            "tensafe-api": product.api_families(copy),
            "tensafe-cluster": product.cluster_families(copy, at),
        }
        for job, families in scraped.items():
            target = {"job": job, "instance": instance}
            for family in families:
                lines = rows.setdefault((family.name, family.type), [])
                for sample in family.samples:
                    labels = _series({**sample.labels, **target})
                    lines.append(f"{sample.name}{{{labels}}} {sample.value!r} {at:.3f}")
            up = rows.setdefault(("up", "gauge"), [])
            up.append(f"up{{{_series(target)}}} 1.0 {at:.3f}")
        at += STEP
    out = []
    for (name, kind), lines in rows.items():
        out.append(f"# TYPE {name} {kind}")
        lines.sort(key=lambda line: line.rsplit(" ", 2)[0])  # stable: each series in time order
        out += lines
    return "\n".join(out) + "\n# EOF\n"


def scrape_configs(product_url: str) -> str:
    target = product_url.removeprefix("http://")
    return "".join(
        f"  - job_name: {job}\n    metrics_path: {path}\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
        for job, path in JOBS.items()
    )


async def start_prometheus(tmp: Path, world: RunningWorld) -> RunningPrometheus:
    """Prometheus with the simulated API's last hour backfilled, scraping it every second;
    returns once it answers a 5-minute rate."""
    product_url = world.urls["product"]
    now = time.time()
    state = world.product
    text = history(state, now, product_url.removeprefix("http://"))
    # The live counters go on from where the history ends.
    state.__dict__.update(product.new_state(now - HISTORY, state.scenario).__dict__)
    product.advance(state, now)
    ready = "sum(rate(tensafe_http_requests_total[5m])) and on() (min(redis_up) >= 0)"
    return await prometheus_with_history(tmp, text, scrape_configs(product_url), ready, 60)


@dataclass
class Served:
    url: str
    world: RunningWorld
    clock: ShiftedClock
    loop: asyncio.AbstractEventLoop
    app: web.Application
    prometheus: RunningPrometheus | None
    runner: web.AppRunner
    fired: dict[str, int] = field(default_factory=dict)
    """Alert name -> the webhook's alert id."""
    trend: dict[date, dict[str, Any]] = field(default_factory=dict)
    """The customer totals `store_trend` stored, by day."""

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def request(
        self, path: str, body: Any = None, *, method: str | None = None, token: str = API_TOKEN
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # the service on loopback, nowhere else
            self.url + path,
            data=data,
            method=method or ("GET" if body is None else "POST"),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def fire(self, name: str, summary: str, *, minutes_ago: float = 0) -> int:
        """A critical alert received `minutes_ago` (its 15-minute respond-by counts from then)."""
        now = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        alert = {
            "status": "firing",
            "labels": {"alertname": name, "severity": "critical", "service": "tensafe-api"},
            "annotations": {"summary": summary},
            "startsAt": now.isoformat().replace("+00:00", "Z"),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example/graph",
            "fingerprint": f"{abs(hash(name)):016x}"[:16],
        }
        notification = {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{name}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "tensafe-ops",
            "groupLabels": {"alertname": name},
            "commonLabels": alert["labels"],
            "commonAnnotations": alert["annotations"],
            "externalURL": "http://alertmanager.example:9093",
            "alerts": [alert],
        }
        self.clock.offset = -timedelta(minutes=minutes_ago)
        try:
            self.request("/api/v1/alerts", notification)
            deadline = time.monotonic() + 30
            while True:  # received and ingested under the shifted clock
                found = [
                    a
                    for a in self.request("/api/v1/alerts?state=firing")["alerts"]
                    if a["alertname"] == name
                ]
                if found:
                    self.fired[name] = found[0]["id"]
                    return int(found[0]["id"])
                assert time.monotonic() < deadline, f"alert {name} was never ingested"
                time.sleep(0.1)
        finally:
            self.clock.offset = timedelta(0)

    def store_trend(self) -> dict[date, dict[str, Any]]:
        """Daily records of earlier days, holding what the customers page's trend reads, near
        today's live numbers (TREND). Returns the stored totals by day."""
        ops = self.app[OPERATIONS_KEY]

        async def live() -> tuple[date, dict[str, Any] | None]:
            p = await ops.picture(ops.clock(), None)
            return p.day, views.customer_totals(p)

        today, totals = self.call(live())
        assert totals is not None, "no health scores yet"
        at_risk = totals["bands"]["at_risk"]
        stored: dict[date, dict[str, Any]] = {}
        for days_ago, (more, risk_factor, mrr_factor) in TREND.items():
            at_risk_then = {
                "customers": at_risk["customers"] + more,
                "mrr": round(at_risk["mrr"] * risk_factor, 2),
            }
            stored[today - timedelta(days=days_ago)] = {
                **totals,
                "bands": {**totals["bands"], "at_risk": at_risk_then},
                "mrr": round(totals["mrr"] * mrr_factor, 2),
            }

        async def save() -> None:
            for day, record in stored.items():
                at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=23)
                await ops.store.save_record(day, {"customers": record}, at, replace=True)

        self.call(save())
        self.trend = stored
        return stored


def basic_header() -> str:
    pair = f"{BASIC_USER}:{BASIC_PASSWORD}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def settings_for(world: RunningWorld, state: Path, prometheus_url: str | None) -> Any:
    credentials = Credentials.model_validate(
        {
            "bearer_token": API_TOKEN,
            "basic": BasicAuth.model_validate({"username": BASIC_USER, "password": BASIC_PASSWORD}),
        }
    )
    settings = world.configure(
        parse_settings(
            {
                "server": {"state_dir": str(state)},
                "exporter": {name: {"interval": 2.0} for name in SOURCES},
                "webhook": {"dispatch": {"poll_interval": 0.2}},
                "operator": {
                    "record_check_interval": 3600,
                    "read_auth": {"bearer_token": READ_TOKEN},
                    "prometheus_url": prometheus_url,
                    "pages": {"refresh_seconds": 5},
                },
            }
        )
    )
    # The demo opens every API; these tests want the pages behind credentials.
    return settings.model_copy(
        update={
            "webhook": settings.webhook.model_copy(update={"api_auth": credentials}),
            "operator": settings.operator.model_copy(update={"api_auth": None}),
        }
    )


async def _start(
    tmp: Path, loop: asyncio.AbstractEventLoop, with_prometheus: bool, hostile: bool
) -> Served:
    world = await start_world(
        demo_world(hostile=hostile),
        usage_db_url=f"sqlite+aiosqlite:///{tmp / 'usage.db'}",
        scenario=SCENARIO,
    )
    prometheus = None
    try:
        if with_prometheus:
            prometheus = await start_prometheus(tmp / "prometheus", world)
        clock = ShiftedClock()
        settings = settings_for(world, tmp / "state", prometheus.url if prometheus else None)
        app = make_app(settings, clock=clock)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        served = Served(f"http://127.0.0.1:{port}", world, clock, loop, app, prometheus, runner)
    except BaseException:
        if prometheus is not None:
            await prometheus.stop()
        await world.stop()
        raise
    return served


async def _stop(served: Served) -> None:
    await served.runner.cleanup()
    if served.prometheus is not None:
        await served.prometheus.stop()
    await served.world.stop()


def wait_until_scored(served: Served, limit: float = 60.0) -> None:
    """Until every source has refreshed and the health scores exist."""
    deadline = time.monotonic() + limit
    while True:
        with contextlib.suppress(urllib.error.URLError, OSError):
            status = served.request("/api/v1/status")
            customers = served.request("/api/v1/customers?limit=1")
            up = {s["source"] for s in status["sources"] if s["up"]}
            if up >= set(SOURCES) and customers["available"]:
                return
        assert time.monotonic() < deadline, f"sources not all up within {limit}s"
        time.sleep(0.3)


@contextlib.contextmanager
def served_demo(
    tmp: Path, *, with_prometheus: bool = True, hostile: bool = True
) -> Iterator[Served]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="served-demo", daemon=True)
    thread.start()
    try:
        served = asyncio.run_coroutine_threadsafe(
            _start(tmp, loop, with_prometheus, hostile), loop
        ).result(120)
        try:
            wait_until_scored(served)
            yield served
        finally:
            asyncio.run_coroutine_threadsafe(_stop(served), loop).result(60)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
