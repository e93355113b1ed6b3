"""The usage source against a real product database (SQLite and PostgreSQL)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from exporter.config import UsageConfig, UsageQueries
from exporter.runner import Runner
from exporter.snapshot import render
from exporter.sources import usage as usage_source
from exporter.sources.base import ScheduledSource, SourceContext, SourceResult
from exporter.sources.usage import create
from exporter.stats import UpstreamStats
from tensafe_ops.http import UpstreamError
from tensafe_ops.sandbox.usage_world import write_database
from tensafe_ops.sandbox.world import World
from tensafe_ops.storage import StateStore, create_engine, migrate
from tests.conftest import DATABASES, FakeClock, database_url
from tests.exporter.offloop import OffLoopSpy

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat()


def rows(columns: str, *values: tuple[Any, ...]) -> list[dict[str, Any]]:
    names = columns.split()
    return [dict(zip(names, row, strict=True)) for row in values]


def small_world() -> World:
    """Two accounts with hand-counted usage; acct_00003 exists only in seats."""
    world = World(now=NOW)
    a1, a2, a3 = "acct_00001", "acct_00002", "acct_00003"
    world.usage = {
        "accounts": rows(
            "account_id name tier created_at",
            (a1, "Acme", "enterprise", ago(days=90)),
            (a2, "Hooli", "pro", ago(days=90)),
        ),
        "users": rows(
            "user_id account_id email created_at activated_at",
            (1, a1, "a@acme.example", ago(days=60), ago(days=59)),
            (2, a1, "b@acme.example", ago(hours=5), ago(hours=1)),
            (3, a2, "c@hooli.example", ago(hours=2), None),
        ),
        "seats": rows(
            "account_id user_id added_at removed_at",
            (a1, 1, ago(days=60), None),
            (a1, 2, ago(hours=5), None),
            (a2, 3, ago(days=50), ago(days=10)),
            (a2, 4, ago(days=50), ago(days=40)),
            (a3, 5, ago(days=50), None),
        ),
        "api_calls": rows(
            "account_id user_id called_at endpoint",
            (a1, 1, ago(hours=1), "/v1/inference"),
            (a1, 1, ago(hours=2), "/v1/inference"),
            (a1, 2, ago(days=3), "/v1/models"),
            (a2, 3, ago(days=10), "/v1/models"),
            (a2, 3, ago(days=45), "/v1/models"),
        ),
        "training_jobs": rows(
            "job_id account_id status created_at",
            (1, a1, "running", ago(hours=3)),
            (2, a1, "failed", ago(hours=4)),
            (3, a1, "failed", ago(hours=5)),
            (4, a2, "succeeded", ago(days=2)),
        ),
    }
    return world


@pytest.fixture(params=DATABASES)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request, tmp_path, "usage.db")


@pytest.fixture
async def usage_db_url(empty_db_url: str) -> str:
    """A product database holding `small_world()`, once on SQLite and once on PostgreSQL."""
    await write_database(small_world(), empty_db_url)
    return empty_db_url


@pytest.fixture
async def context(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SourceContext]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    await migrate(engine)
    yield SourceContext(StateStore(engine), UpstreamStats(), clock, facts=_NoFacts())
    await engine.dispose()


class _NoFacts:
    def facts(self, source: str) -> None:
        return None


def samples(result: SourceResult) -> Samples:
    text, _ = render(result.families)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


async def refresh(cfg: UsageConfig, context: SourceContext) -> SourceResult:
    source = create(cfg, context)
    try:
        return await source.refresh(NOW)
    finally:
        await source.aclose()


async def test_metrics_and_facts_equal_what_was_inserted(
    usage_db_url: str, context: SourceContext
) -> None:
    result = await refresh(UsageConfig(url=SecretStr(usage_db_url)), context)
    got = samples(result)
    assert got[("tensafe_usage_daily_active_users", ())] == 1
    assert got[("tensafe_usage_weekly_active_users", ())] == 2
    assert got[("tensafe_usage_monthly_active_users", ())] == 3
    assert got[("tensafe_usage_api_calls_24h", ())] == 2
    assert got[("tensafe_usage_signups_24h", ())] == 2
    assert got[("tensafe_usage_activations_24h", ())] == 1
    assert got[("tensafe_usage_training_jobs_24h", (("status", "failed"),))] == 2
    assert got[("tensafe_usage_training_jobs_24h", (("status", "running"),))] == 1
    assert ("tensafe_usage_training_jobs_24h", (("status", "succeeded"),)) not in got
    assert got[("tensafe_usage_seats", ())] == 3
    assert got[("tensafe_usage_accounts", ())] == 3
    assert got[("tensafe_account_join_issues", (("issue", "missing_id"), ("source", "usage")))] == 0

    facts: dict[str, Any] = dict(result.facts)
    assert facts["acct_00001"] == {
        "last_api_call": (NOW - timedelta(hours=1)).timestamp(),
        "seats": 2,
        "seats_removed_30d": 0,
        "tier": "enterprise",
        "name": "Acme",
    }
    assert facts["acct_00002"]["last_api_call"] == (NOW - timedelta(days=10)).timestamp()
    assert (facts["acct_00002"]["seats"], facts["acct_00002"]["seats_removed_30d"]) == (0, 1)
    # Known only from its seats: no name or tier, never called the API.
    assert facts["acct_00003"] == {
        "last_api_call": None,
        "seats": 1,
        "seats_removed_30d": 0,
        "tier": "unknown",
        "name": "acct_00003",
    }


async def test_rows_are_folded_off_the_event_loop(
    usage_db_url: str, context: SourceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    fold = OffLoopSpy(usage_source._add_facts)
    families = OffLoopSpy(usage_source._families)
    monkeypatch.setattr(usage_source, "_add_facts", fold)
    monkeypatch.setattr(usage_source, "_families", families)
    result = await refresh(UsageConfig(url=SecretStr(usage_db_url)), context)
    assert fold.ran_off_loop and len(fold.threads) == 4  # once per per-account query
    assert families.ran_off_loop
    assert samples(result)[("tensafe_usage_seats", ())] == 3
    assert result.facts["acct_00001"]["seats"] == 2


async def test_custom_queries_and_join_issues(usage_db_url: str, context: SourceContext) -> None:
    queries = UsageQueries(
        accounts="SELECT account_id, name, tier FROM accounts"
        " UNION ALL SELECT account_id, name, tier FROM accounts WHERE tier = 'pro'"
        " UNION ALL SELECT NULL, 'ghost', 'pro' FROM accounts WHERE tier = 'pro'",
        dau="SELECT 42",
    )
    result = await refresh(UsageConfig(url=SecretStr(usage_db_url), queries=queries), context)
    got = samples(result)
    assert got[("tensafe_usage_daily_active_users", ())] == 42
    issue = "tensafe_account_join_issues"
    assert got[(issue, (("issue", "duplicate_id"), ("source", "usage")))] == 1
    assert got[(issue, (("issue", "missing_id"), ("source", "usage")))] == 1
    assert result.facts["acct_00002"]["name"] == "Hooli"


@pytest.mark.parametrize(
    ("queries", "kind", "key"),
    [
        (UsageQueries(wau="SELECT COUNT(*) FROM no_such_table"), "client_error", "'wau'"),
        (UsageQueries(mau="SELEC 1"), "client_error", "'mau'"),
        (UsageQueries(dau="SELECT 1, 2"), "malformed", "'dau'"),
        (UsageQueries(api_calls_24h="SELECT 'many'"), "malformed", "'api_calls_24h'"),
        (
            UsageQueries(seats_per_account="SELECT account_id FROM accounts"),
            "malformed",
            "'seats_per_account'",
        ),
        (
            UsageQueries(signups_24h="SELECT COUNT(*) FROM users WHERE created_at >= :since_2d"),
            "client_error",
            "'signups_24h'",
        ),
    ],
)
async def test_bad_query_fails_naming_the_query(
    usage_db_url: str, context: SourceContext, queries: UsageQueries, kind: str, key: str
) -> None:
    with pytest.raises(UpstreamError) as failure:
        await refresh(UsageConfig(url=SecretStr(usage_db_url), queries=queries), context)
    assert failure.value.kind == kind
    assert key in str(failure.value)
    assert context.stats.errors[("usage", kind)] == 1


async def test_unreachable_database_is_a_network_error_without_the_password(
    context: SourceContext,
) -> None:
    url = "postgresql+asyncpg://ops:s3cret-pw@127.0.0.1:1/product"
    with pytest.raises(UpstreamError) as failure:
        await refresh(UsageConfig(url=SecretStr(url), request_timeout=3), context)
    assert failure.value.kind == "network"
    assert "s3cret-pw" not in str(failure.value)


async def test_slow_query_times_out(pg_url: str, context: SourceContext) -> None:
    await write_database(small_world(), pg_url)
    queries = UsageQueries(mau="SELECT COUNT(*) FROM pg_sleep(5)")
    cfg = UsageConfig(url=SecretStr(pg_url), queries=queries, request_timeout=0.3)
    started = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamError) as failure:
        await refresh(cfg, context)
    assert failure.value.kind == "timeout"
    assert "'mau'" in str(failure.value)
    assert asyncio.get_running_loop().time() - started < 3


class TcpRelay:
    """A loopback TCP relay to PostgreSQL that the test can cut, like a database going down."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self, listen_port: int = 0) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", listen_port)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)

        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            running = asyncio.create_task(task)
            self.tasks.add(running)
            running.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for writer in self.writers:
            writer.close()  # cut live connections too, as a crashed server would
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_database_down_keeps_last_values_with_up_zero(
    pg_url: str, context: SourceContext, clock: FakeClock
) -> None:
    await write_database(small_world(), pg_url)
    relay = TcpRelay(5432)
    port = await relay.start()
    relayed = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
    cfg = UsageConfig(url=SecretStr(relayed), request_timeout=3, timeout=10)
    source = create(cfg, context)
    runner = Runner([ScheduledSource(source, cfg)], context.state, context.stats, clock)
    try:
        assert await runner.refresh_once(runner.sources[0])
        before = runner.current().text
        assert b"tensafe_usage_api_calls_24h 2.0" in before

        await relay.stop()
        clock.advance(minutes=1)
        assert not await runner.refresh_once(runner.sources[0])
        assert runner.current().text == before
        assert context.stats.source("usage").up is False
        assert context.stats.errors[("usage", "refresh_network")] == 1
        assert runner.facts("usage") is not None
    finally:
        await relay.stop()
        await source.aclose()
