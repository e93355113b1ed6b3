"""The runner keeps last good values on failure, drops vanished series and restores on restart."""

import asyncio
import contextlib
import gzip
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import SourceConfig
from exporter.runner import Runner, next_delay
from exporter.sources.base import ScheduledSource, SourceResult
from exporter.stats import SelfCollector, UpstreamStats
from tensafe_ops.http import UpstreamError
from tensafe_ops.storage import StateStore, create_engine, migrate
from tests.conftest import FakeClock


class ScriptedSource:
    """A source whose next answers are set by the test (a stateful stand-in, not a mock)."""

    name = "zendesk"

    def __init__(self) -> None:
        self.tickets: dict[str, float] = {}
        self.fail_with: Exception | None = None

    async def refresh(self, now: datetime) -> SourceResult:
        if self.fail_with is not None:
            raise self.fail_with
        family = GaugeMetricFamily("tensafe_test_tickets", "Tickets.", labels=["priority"])
        for priority, value in sorted(self.tickets.items()):
            family.add_metric([priority], value)
        return SourceResult([family], facts={"acct_1": {"open": 1}})

    async def aclose(self) -> None:
        return None


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


async def test_failure_keeps_values_and_vanished_series_vanish(
    state_db_url: str, clock: FakeClock
) -> None:
    engine = create_engine(state_db_url)
    await migrate(engine)
    stats = UpstreamStats()
    source = ScriptedSource()
    scheduled = ScheduledSource(source, SourceConfig(interval=60))
    runner = Runner([scheduled], StateStore(engine), stats, clock)

    source.tickets = {"urgent": 3, "low": 5}
    assert await runner.refresh_once(scheduled)
    values = samples(runner.current().text)
    assert values[("tensafe_test_tickets", (("priority", "urgent"),))] == 3
    assert gzip.decompress(runner.current().text_gzip) == runner.current().text

    source.fail_with = UpstreamError("server_error", "boom", status=502)
    assert not await runner.refresh_once(scheduled)
    assert samples(runner.current().text)[("tensafe_test_tickets", (("priority", "low"),))] == 5
    assert stats.source("zendesk").up is False
    assert stats.errors[("zendesk", "refresh_server_error")] == 1

    source.fail_with = None
    source.tickets = {"urgent": 1}
    clock.advance(minutes=1)
    assert await runner.refresh_once(scheduled)
    values = samples(runner.current().text)
    assert ("tensafe_test_tickets", (("priority", "low"),)) not in values
    assert stats.source("zendesk").up is True

    # A restarted exporter serves the persisted snapshot before its first refresh.
    restarted = Runner([scheduled], StateStore(engine), UpstreamStats(), clock)
    await restarted.restore()
    assert samples(restarted.current().text) == values
    assert restarted.facts("zendesk") == {"acct_1": {"open": 1}}
    assert restarted.stats.source("zendesk").last_success == clock.now.timestamp()
    await engine.dispose()


async def test_self_metrics_report_up_and_progress(clock: FakeClock) -> None:
    stats = UpstreamStats(demo=True)
    stats.source("stripe").up = True
    stats.source("stripe").last_success = 1.0e9
    stats.set_progress("zendesk", 50, 200)
    stats.record_request("zendesk", 429)
    collector = SelfCollector(stats, ("zendesk", "stripe"))
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in collector.collect()
        for s in f.samples
    }
    assert got[("tensafe_exporter_demo_mode", ())] == 1
    assert got[("tensafe_exporter_source_up", (("source", "zendesk"),))] == 0
    assert got[("tensafe_exporter_source_up", (("source", "stripe"),))] == 1
    assert got[("tensafe_exporter_initial_sync_progress_ratio", (("source", "zendesk"),))] == 0.25
    assert got[("tensafe_exporter_upstream_rate_limited_total", (("source", "zendesk"),))] == 1


async def test_families_shared_by_sources_are_merged_once(
    state_db_url: str, clock: FakeClock
) -> None:
    engine = create_engine(state_db_url)
    await migrate(engine)

    class JoinIssues:
        def __init__(self, name: str, missing: int) -> None:
            self.name = name
            self.missing = missing

        async def refresh(self, now: datetime) -> SourceResult:
            family = GaugeMetricFamily(
                "tensafe_account_join_issues", "Join issues.", labels=["source", "issue"]
            )
            family.add_metric([self.name, "missing_id"], self.missing)
            return SourceResult([family])

        async def aclose(self) -> None:
            return None

    scheduled = [
        ScheduledSource(JoinIssues("stripe", 2), SourceConfig()),
        ScheduledSource(JoinIssues("usage", 5), SourceConfig()),
    ]
    runner = Runner(scheduled, StateStore(engine), UpstreamStats(), clock)
    for item in scheduled:
        assert await runner.refresh_once(item)
    text = runner.current().text.decode()
    assert text.count("# HELP tensafe_account_join_issues ") == 1
    values = samples(runner.current().text)
    assert (
        values[("tensafe_account_join_issues", (("issue", "missing_id"), ("source", "usage")))] == 5
    )
    restarted = Runner(scheduled, StateStore(engine), UpstreamStats(), clock)
    await restarted.restore()
    assert restarted.current().text == runner.current().text
    await engine.dispose()


class WaitingSource:
    """Asks to be refreshed again soon until its third refresh (as health waiting for inputs)."""

    name = "health"

    def __init__(self) -> None:
        self.calls = 0

    async def refresh(self, now: datetime) -> SourceResult:
        self.calls += 1
        return SourceResult([], refresh_again_in=None if self.calls >= 3 else 0.01)

    async def aclose(self) -> None:
        return None


async def test_a_source_asking_to_look_again_soon_is_not_left_for_its_interval(
    state_db_url: str, clock: FakeClock
) -> None:
    engine = create_engine(state_db_url)
    await migrate(engine)
    source = WaitingSource()
    scheduled = ScheduledSource(source, SourceConfig(interval=3600))
    runner = Runner([scheduled], StateStore(engine), UpstreamStats(), clock)
    task = asyncio.create_task(runner.run_forever(scheduled))
    for _ in range(200):
        if source.calls >= 3:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert source.calls == 3  # twice soon, then back to its hour
    assert "health" not in runner.refresh_again_in
    await engine.dispose()


def test_next_delay_waits_for_retry_after_up_to_an_interval() -> None:
    # After a success: the interval, jittered by 5 %, unless the source asked to look again.
    assert 57 <= next_delay(0, 60) <= 63
    assert next_delay(0, 60, again_in=2.0) == 2.0
    # After a failure: a short backoff (5 s plus jitter, within the interval) ...
    assert 5 <= next_delay(1, 60) <= 10
    assert next_delay(1, 3) == 3
    # ... but no sooner than the upstream asked, waiting at most one interval for it.
    assert next_delay(1, 60, retry_after=3600) == 60
    assert next_delay(1, 60, retry_after=30) == 30
    assert 5 <= next_delay(1, 60, retry_after=1) <= 10


async def test_a_rate_limited_refresh_shows_the_source_down_at_once(
    state_db_url: str, clock: FakeClock
) -> None:
    engine = create_engine(state_db_url)
    await migrate(engine)
    source = ScriptedSource()
    source.tickets = {"high": 1}
    stats = UpstreamStats()
    scheduled = ScheduledSource(source, SourceConfig(interval=60))
    runner = Runner([scheduled], StateStore(engine), stats, clock)
    assert await runner.refresh_once(scheduled)
    source.fail_with = UpstreamError("rate_limited", "429", status=429, retry_after=3600)
    assert not await runner.refresh_once(scheduled)
    assert stats.source("zendesk").up is False
    assert runner.retry_after["zendesk"] == 3600
    source.fail_with = None  # the upstream recovered: the next refresh (within 60 s) succeeds
    assert await runner.refresh_once(scheduled)
    assert stats.source("zendesk").up is True
    await engine.dispose()


class StopsAsItFinishes(ScriptedSource):
    """A refresh that finishes in the very step its runner is told to stop."""

    def __init__(self) -> None:
        super().__init__()
        self.task: asyncio.Task[None] | None = None

    async def refresh(self, now: datetime) -> SourceResult:
        assert self.task is not None
        asyncio.get_running_loop().call_soon(self.task.cancel)
        return await super().refresh(now)


async def test_a_stop_that_meets_a_finishing_refresh_still_stops(
    state_db_url: str, clock: FakeClock
) -> None:
    """asyncio.wait_for (Python 3.11) dropped such a cancellation: the loop went on refreshing
    and the shutdown that cancelled it waited forever."""
    engine = create_engine(state_db_url)
    await migrate(engine)
    source = StopsAsItFinishes()
    scheduled = ScheduledSource(source, SourceConfig(interval=0.01))
    runner = Runner([scheduled], StateStore(engine), UpstreamStats(), clock)
    source.task = asyncio.create_task(runner.run_forever(scheduled))
    async with asyncio.timeout(5):
        await asyncio.wait([source.task])
    assert source.task.cancelled()
    await engine.dispose()
