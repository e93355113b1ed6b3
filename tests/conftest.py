"""Shared fixtures: state DBs (SQLite and PostgreSQL), clocks, and dependency checks.

Tests needing PostgreSQL or a Debian binary skip on a laptop without them, but in CI
(CI=true) a missing dependency fails the test instead.
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import structlog

PG_DSN = os.environ.get("TENSAFE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
"""Params of a fixture that runs its tests once per state database (see `database_url`)."""

# structlog's default console renderer draws a logged exception with rich: every frame's source
# and locals, seconds per traceback on this machine. A loop logging a failure during a test's
# teardown (e.g. a dispatcher round after its database went away) took 25-50 s a test. Tests
# print tracebacks as plain text, as the service does (tensafe_ops.log: format_exc_info).
TEST_LOGGING = {
    "processors": [
        *structlog.get_config()["processors"][:-1],
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
    ]
}
structlog.configure(**TEST_LOGGING)


def missing_dependency(reason: str) -> None:
    """Skip locally; fail in CI, where every dependency must be present."""
    if IN_CI:
        pytest.fail(f"CI requires this dependency: {reason}")
    pytest.skip(reason)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing_dependency(f"{name} is not installed (apt-get install it)")
    assert path is not None
    return path


async def assert_promtool_accepts_metrics(exposition: bytes) -> None:
    """`promtool check metrics` finds nothing wrong with this exposition (its lint included)."""
    process = await asyncio.create_subprocess_exec(
        require_binary("promtool"),
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(exposition)
    assert process.returncode == 0, (err + out).decode()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs PostgreSQL carries the `postgres` marker (`-m "not postgres"`):
    those using `pg_url`, and those parametrised `postgresql` (which ask for it at run time)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        if "pg_url" in getattr(item, "fixturenames", ()) or "postgresql" in params:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    try:
        admin = await asyncpg.connect(PG_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        missing_dependency(f"PostgreSQL at {PG_DSN} is not reachable: {exc}")
    name = f"tensafe_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def database_url(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> str:
    """The database of a fixture parametrised with `DATABASES`: a SQLite file `name` in
    tmp_path, or a fresh PostgreSQL database (that param is marked `postgres`)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / name}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=DATABASES)
def state_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test once on SQLite and once on PostgreSQL."""
    return database_url(request, tmp_path, "state.db")


class FakeClock:
    """A settable wall clock for pure functions and sources."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    yield FakeClock()
