"""Pieces of the webhook benchmark: the servers (each in its own process), the Alertmanager
payload, and the two load generators (wrk closed loop, a Python open-loop client), which also
run in their own processes so neither steals the server's event loop.
"""

import asyncio
import gc
import json
import multiprocessing
import os
import re
import signal
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import SOURCES
from webhook.journal_sqlite import journal_path

TOKEN = "bench-am-token-7c1e"
PATH = "/api/v1/alerts"
ALERTS_PER_GROUP = 10
ID = "@ID@"
"""Replaced by 12 hex digits per request: every alert of every request has its own
fingerprint (ID + 4 hex digits of its index), so every notification is real work."""
NOWHERE = "http://127.0.0.1:9"
SPAWN = multiprocessing.get_context("spawn")


def notification_template(
    severity: str = "critical", alerts_per_group: int = ALERTS_PER_GROUP
) -> str:
    """One Alertmanager group of firing alerts, shaped like the real thing."""
    alerts = []
    for index in range(alerts_per_group):
        labels = {
            "alertname": "HighErrorRate",
            "job": "tensafe-api",
            "instance": f"api-{ID}-{index}",
            "severity": severity,
        }
        alerts.append(
            {
                "status": "firing",
                "labels": labels,
                "annotations": {
                    "summary": f"Error rate above 5% on api-{index}",
                    "description": "5xx responses are 7.3% of all requests over 5 minutes.",
                    "runbook_url": "https://runbooks.tensafe.example/HighErrorRate",
                },
                "startsAt": "2026-11-27T17:20:00.123Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.tensafe.example:9090/graph?g0.expr=x",
                "fingerprint": f"{ID}{index:04x}",
            }
        )
    body = {
        "receiver": "tensafe-ops",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "job": "tensafe-api", "severity": severity},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.tensafe.example:9093",
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
    }
    return json.dumps(body)


def body_for(template: str, run: int, n: int) -> bytes:
    return template.replace(ID, f"{run:04x}{n:08x}").encode()


async def journal_pending(db_url: str) -> int:
    """Notifications the server journaled and has not ingested yet (wherever its journal
    lives: a file beside a SQLite state database, else the state database's table)."""
    engine = create_async_engine(db_url)
    try:
        path = journal_path(engine)
        if path is not None:
            with sqlite3.connect(path) as db:  # a quick read; the bench's loop waits anyway
                return int(db.execute("SELECT count(*) FROM notifications").fetchone()[0])
        async with engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM webhook_notifications")
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


# -- servers ---------------------------------------------------------------------------------


def webhook_settings(
    state_dir: Path, db_url: str, destinations: dict[str, Any] | None = None, **dispatch: Any
) -> dict[str, Any]:
    """The real service: webhook on, exporter off. By default the destinations are a closed
    port and the dispatcher idles (poll every hour), so only the receiver is measured."""
    if destinations is None:
        destinations = {
            "pagerduty": {"default": {"routing_key": "R" * 32, "events_url": NOWHERE}},
            "slack": {
                "incidents": {"webhook_url": f"{NOWHERE}/services/T1/B1/x"},
                "alerts": {"webhook_url": f"{NOWHERE}/services/T1/B2/y"},
            },
            "zendesk": {"default": {"base_url": NOWHERE, "email": "ops@x.example", "token": "z"}},
        }
        dispatch = {"poll_interval": 3600, **dispatch}
    return {
        "server": {"state_dir": str(state_dir), "state_db_url": db_url},
        "exporter": {name: {"enabled": False} for name in SOURCES},
        "webhook": {
            "enabled": True,
            "receivers": {PATH: {"auth": {"bearer_token": TOKEN}}},
            "api_auth": {"bearer_token": "bench-api-token"},
            "destinations": destinations,
            "dispatch": dispatch,
            "sweep_interval": 3600,
        },
    }


def bare_app() -> web.Application:
    """The baseline: parse the same JSON, answer 200."""

    async def receive(request: web.Request) -> web.Response:
        json.loads(await request.read())
        return web.json_response({"status": "accepted"})

    app = web.Application(client_max_size=1024**2)
    app.router.add_post(PATH, receive)
    return app


SESSION_KEY = web.AppKey("forward_session", aiohttp.ClientSession)


def forwarder_app(events_url: str, routing_key: str) -> web.Application:
    """The time-to-page floor: parse the notification, POST one PagerDuty trigger per alert
    straight from the handler, then answer. No storage, no queue: the least any receiver
    that pages can take."""

    async def receive(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        session = request.app[SESSION_KEY]
        for alert in body["alerts"]:
            event = {
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": f"tensafe:{alert['fingerprint']}",
                "payload": {
                    "summary": alert["annotations"]["summary"],
                    "source": alert["labels"]["instance"],
                    "severity": "critical",
                },
            }
            async with session.post(events_url, json=event) as response:
                await response.read()
        return web.json_response({"status": "accepted"})

    async def session_ctx(app: web.Application) -> Any:
        async with aiohttp.ClientSession() as session:
            app[SESSION_KEY] = session
            yield

    app = web.Application(client_max_size=1024**2)
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post(PATH, receive)
    return app


ServerKind = dict[str, Any] | tuple[str, str] | None
"""Settings of the real service, (events_url, routing_key) of the forwarder, or None (bare)."""


async def _serve(kind: ServerKind, port_out: Connection) -> None:
    from tensafe_ops.app import make_app
    from tensafe_ops.gc_tuning import freeze_startup_objects
    from tensafe_ops.settings import parse_settings

    if kind is None:
        app = bare_app()
    elif isinstance(kind, tuple):
        app = forwarder_app(*kind)
    else:
        app = make_app(parse_settings(kind))
    runner = web.AppRunner(app)  # as `tensafe-ops serve` does
    await runner.setup()
    freeze_startup_objects()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port_out.send(runner.addresses[0][1])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()  # waits for accepted writes, like a real shutdown


def _server_main(kind: ServerKind, log_path: str, port_out: Connection) -> None:
    from tensafe_ops.log import setup_logging

    # Logs go to a file, at the service's normal level: writing them is part of the cost.
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log_fd, 2)
    setup_logging("json")
    asyncio.run(_serve(kind, port_out))


@dataclass
class Server:
    process: Any
    url: str

    @classmethod
    def start(cls, kind: ServerKind, log_path: Path) -> "Server":
        """The real service (its settings), the forwarder ((events_url, routing_key)) or the
        bare handler (None)."""
        receive, send = SPAWN.Pipe(duplex=False)
        process = SPAWN.Process(target=_server_main, args=(kind, str(log_path), send))
        process.start()
        if not receive.poll(60):
            process.kill()
            raise RuntimeError(f"server did not start; see {log_path}")
        return cls(process, f"http://127.0.0.1:{receive.recv()}{PATH}")

    def stop(self) -> None:
        self.process.terminate()  # SIGTERM: graceful, in-flight writes finish
        self.process.join(60)


# -- closed loop: wrk --------------------------------------------------------------------------

_LUA = """
local template = [==[%(template)s]==]
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local run = 0
local counter = 0
function init(args)
  run = tonumber(args[1])
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
function request()
  counter = counter + 1
  local id = string.format("%%04x%%02x%%06x", run, tid, counter)
  local body = template:gsub("%(id)s", id)
  return wrk.format(nil, nil, nil, body)
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class ClosedLoop:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def accepted(self) -> int:
        return self.requests - self.non_2xx


def run_wrk(url: str, template: str, run: int, seconds: float, connections: int) -> ClosedLoop:
    """wrk, one thread (the server has the other core), `connections` kept busy. Each thread
    numbers its bodies from 1, so `run` keeps the fingerprints of every run distinct."""
    script = _LUA % {"template": template, "token": TOKEN, "id": ID}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    try:
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", lua.name, url]
        output = subprocess.run(
            [*command, "--", str(run)], capture_output=True, text=True, check=True
        ).stdout
    finally:
        os.unlink(lua.name)
    found = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+)$", output, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    requests, micros, non_2xx, socket_errors, p99_us = map(int, found.groups())
    return ClosedLoop(requests, micros / 1e6, non_2xx, socket_errors, p99_us / 1000)


# -- open loop: a Python client in its own process ---------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One request of the open loop; times are `time.monotonic()` (CLOCK_MONOTONIC: the same
    clock in every process of this machine, so they compare with a fake's arrival times)."""

    n: int
    due: float
    started: float
    finished: float
    status: int
    measured: bool
    """False during the warmup."""


async def _open_loop(
    url: str, template: str, run: int, rate: float, seconds: float, warmup: float
) -> list[Sent]:
    """Request n is due at start + n/rate whatever happened to earlier ones (open loop);
    its latency counts from that due time, so a stalled server cannot hide its queue."""
    sent: list[Sent] = []
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(n: int, due: float) -> None:
            body = body_for(template, run, n)
            started = time.monotonic()
            try:
                async with session.post(url, data=body) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:
                status = 0
            sent.append(Sent(n, due, started, time.monotonic(), status, due - start >= warmup))

        start = time.monotonic()
        tasks = []
        total = int(rate * (seconds + warmup))
        for n in range(total):
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n, due)))
        await asyncio.gather(*tasks)
    return sorted(sent, key=lambda s: s.n)


def _open_loop_main(out: Connection, *args: Any) -> None:
    # The load generator must not stall: full collections of its own heap took 40-90 ms
    # (seen through gc.callbacks), which latencies counted from due times charged to the
    # server. Reference counting frees nearly everything of a 10 s run; the rest can wait.
    gc.disable()
    try:
        sent = asyncio.run(_open_loop(*args))
    finally:
        gc.enable()
    out.send(sent)


def open_loop_requests(
    url: str, template: str, run: int, rate: float, seconds: float, warmup: float = 1.0
) -> list[Sent]:
    """Every request of an open-loop run, sent from a process of its own."""
    receive, send = SPAWN.Pipe(duplex=False)
    process = SPAWN.Process(
        target=_open_loop_main, args=(send, url, template, run, rate, seconds, warmup)
    )
    process.start()
    result: list[Sent] = receive.recv()
    process.join()
    return result


def run_open_loop(
    url: str, template: str, run: int, rate: float, seconds: float, warmup: float = 1.0
) -> tuple[list[float], dict[int, int]]:
    """Latencies after the warmup (from each due time) and the count of every status."""
    sent = open_loop_requests(url, template, run, rate, seconds, warmup)
    statuses: dict[int, int] = {}
    for request in sent:
        statuses[request.status] = statuses.get(request.status, 0) + 1
    return [r.finished - r.due for r in sent if r.measured], statuses
