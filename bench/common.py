"""Helpers shared by the benchmarks: percentiles, a throwaway app on loopback, the sandbox."""

import contextlib
import json
import statistics
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from aiohttp import web

from tensafe_ops.app import make_app
from tensafe_ops.settings import parse_settings

SOURCES = ("zendesk", "pagerduty", "stripe", "usage", "health")
BIN = Path(sys.executable).parent / "tensafe-ops"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
EXPORT_WINDOW = 0.08
"""Seconds the fake Zendesk's export takes 10 requests in, in step with the exporter paced at
6,000/min in the benchmarks (Zendesk: 10 per 60 s; the benchmarks need not wait it out)."""


@contextlib.asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """A new empty database (like tests/conftest.py `pg_url`), dropped afterwards."""
    admin = await asyncpg.connect(PG_ADMIN, timeout=3)
    name = f"tensafe_bench_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def maybe_postgres(enabled: bool) -> AsyncIterator[str | None]:
    """`fresh_postgres()` when enabled, else None (`--no-postgres`)."""
    if not enabled:
        yield None
        return
    async with fresh_postgres() as url:
        yield url


@contextlib.contextmanager
def sandbox_process(state_dir: Path, *options: str) -> Iterator[dict[str, Any]]:
    """`tensafe-ops sandbox <options>` in its own process, so the simulated upstreams never
    share the measured process's CPU or event loop; yields what it prints (its URLs)."""
    sandbox = subprocess.Popen(
        [str(BIN), "sandbox", *options, "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        info: dict[str, Any] = json.loads(sandbox.stdout.readline())
        yield info
    finally:
        sandbox.terminate()
        sandbox.wait(30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "mean_ms": statistics.fmean(values) * 1000,
    }


def quiet_app(state_dir: Path, **exporter: Any) -> web.Application:
    """The real app with every source disabled unless configured in `exporter`."""
    sections = {name: {"enabled": False} for name in SOURCES}
    sections.update(exporter)
    return make_app(parse_settings({"server": {"state_dir": str(state_dir)}, "exporter": sections}))


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
