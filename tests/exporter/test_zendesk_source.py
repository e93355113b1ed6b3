"""The Zendesk source against the fake Support API over HTTP, with the real zenpy."""

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from structlog.testing import capture_logs

from exporter.config import ZendeskConfig
from exporter.runner import Runner
from exporter.snapshot import render
from exporter.sources.base import ScheduledSource, SourceContext
from exporter.sources.zendesk import ZendeskSource, create
from exporter.sources.zendesk import metrics as zendesk_metrics
from exporter.sources.zendesk import source as zendesk_source
from exporter.sources.zendesk.source import CURSOR_NS, TICKET_NS
from exporter.stats import UpstreamStats
from tensafe_ops.http import UpstreamError
from tensafe_ops.sandbox import zendesk_api, zendesk_world
from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.world import World, WorldSize, advance, generate, load
from tensafe_ops.storage import StateStore, create_engine, migrate
from tests.conftest import FakeClock
from tests.contracts import ContractRecorder
from tests.exporter.offloop import OffLoopSpy
from tests.sandbox.test_zendesk_fake import check

EMAIL = "ops@tensafe.example"
TOKEN = "zd-secret-token-4242"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TARGETS = {"urgent": 3600, "high": 14400, "normal": 86400, "low": 172800}
NAMES = {"urgent": "p1", "high": "p2", "normal": "p3", "low": "p4"}
OPEN = ("new", "open", "pending", "hold")
WINDOWS = {"24h": 86400, "7d": 7 * 86400}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


class NoFacts:
    def facts(self, source: str) -> Mapping[str, Any] | None:
        return None


def samples(families: list[Metric] | Any) -> Samples:
    text, _ = render(families)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def world_of(tickets: int = 600) -> World:
    return generate(11, WorldSize(accounts=40, tickets=tickets, subscriptions=0, incidents=0), NOW)


def expected(world: World, now: datetime) -> dict[str, Any]:
    """What the world says, computed straight from its dicts (independent of exporter.sla)."""
    metrics = {m["ticket_id"]: m for m in world.zendesk["ticket_metrics"]}
    at = now.timestamp()
    open_grid = {(NAMES[p], s): 0 for p in NAMES for s in OPEN}
    breaching = dict.fromkeys(NAMES.values(), 0)
    achieved = {(NAMES[p], w, r): 0 for p in NAMES for w in WINDOWS for r in ("met", "missed")}
    created = solved = 0
    for ticket in world.zendesk["tickets"]:
        metric = metrics[ticket["id"]]
        created_at = datetime.fromisoformat(ticket["created_at"]).timestamp()
        reply_minutes = metric.get("reply_time_in_minutes", {}).get("calendar")
        replied = reply_minutes is not None
        responded = created_at + reply_minutes * 60 if replied else None
        if not replied and ticket["status"] in ("solved", "closed") and metric.get("solved_at"):
            responded = datetime.fromisoformat(metric["solved_at"]).timestamp()
        for window, seconds in WINDOWS.items():
            if responded is not None and at - seconds < responded <= at:
                met = responded - created_at <= TARGETS[ticket["priority"]]
                achieved[(NAMES[ticket["priority"]], window, "met" if met else "missed")] += 1
        if ticket["status"] in OPEN:
            open_grid[(NAMES[ticket["priority"]], ticket["status"])] += 1
            if not replied and at - created_at > TARGETS[ticket["priority"]]:
                breaching[NAMES[ticket["priority"]]] += 1
        created += created_at >= at - 86400
        solved_at = metric.get("solved_at")
        if ticket["status"] in ("solved", "closed") and solved_at:
            solved += datetime.fromisoformat(solved_at).timestamp() >= at - 86400
    return {
        "open": open_grid,
        "breaching": breaching,
        "achieved": achieved,
        "created": created,
        "solved": solved,
    }


def assert_matches(values: Samples, world: World, now: datetime) -> None:
    want = expected(world, now)
    for (priority, status), count in want["open"].items():
        labels = (("priority", priority), ("status", status))
        assert values[("tensafe_zendesk_open_tickets", labels)] == count, (priority, status)
    for priority, count in want["breaching"].items():
        assert values[("tensafe_zendesk_sla_breaching_tickets", (("priority", priority),))] == count
    for (priority, window, result), count in want["achieved"].items():
        labels = (("priority", priority), ("result", result), ("window", window))
        assert values[("tensafe_zendesk_first_response_sla_tickets", labels)] == count, labels
    assert values[("tensafe_zendesk_tickets_created_24h", ())] == want["created"]
    assert values[("tensafe_zendesk_tickets_solved_24h", ())] == want["solved"]


def export_pages(tickets: int, first_page: int) -> int:
    """zenpy sends `per_page` with `start_time` only; cursor pages get Zendesk's 1000."""
    return 1 + math.ceil(max(0, tickets - first_page) / 1000)


class Harness:
    """A fake Zendesk on a real port, a state DB and a way to build sources on them."""

    def __init__(self, world: World, faults: Faults, base_url: str, db_url: str) -> None:
        self.world, self.faults, self.base_url, self.db_url = world, faults, base_url, db_url
        self.clock = FakeClock(NOW)
        self.stats = UpstreamStats()

    def config(self, **overrides: Any) -> ZendeskConfig:
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "email": EMAIL,
            "token": SecretStr(TOKEN),
            "rate_limit_per_minute": 60000,
            "page_size": 100,
            "request_timeout": 2.0,
            "max_retries": 3,
        }
        return ZendeskConfig(**(options | overrides))

    async def source(self, **overrides: Any) -> ZendeskSource:
        engine = create_engine(self.db_url)
        await migrate(engine)
        context = SourceContext(StateStore(engine), self.stats, self.clock, NoFacts())
        return ZendeskSource(self.config(**overrides), context, backoff_base=0.01)

    def responses(self, code: str = "200") -> int:
        return self.stats.requests[("zendesk", code)]


async def harness(
    aiohttp_server: ServerFactory,
    world: World,
    db_url: str,
    faults: Faults | None = None,
    **app: Any,
) -> tuple[Harness, ContractRecorder]:
    faults = faults or Faults(retry_after=1)
    # The export limit is on, as in Zendesk: 10 requests per window, the window shrunk in step
    # with the source's pace here (60,000/min: 10 per 8 ms leaves room for timer jitter).
    app = {"limit_window_seconds": 0.008, **app}
    fake = zendesk_api.make_app(world, faults, credentials={"email": EMAIL, "token": TOKEN}, **app)
    recorder = ContractRecorder("zendesk")
    recorder.attach(fake)
    server = await aiohttp_server(fake)
    return Harness(world, faults, str(server.make_url("")).rstrip("/"), db_url), recorder


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"


async def test_full_sync_matches_the_world(aiohttp_server: ServerFactory, sqlite_url: str) -> None:
    world = world_of()
    h, recorder = await harness(aiohttp_server, world, sqlite_url)
    source = await h.source()
    result = await source.refresh(NOW)
    values = samples(result.families)
    assert_matches(values, world, NOW)
    assert sum(expected(world, NOW)["breaching"].values()) > 0  # the scenario has breaches
    achieved = expected(world, NOW)["achieved"]
    for outcome in ("met", "missed"):  # the scenario has both, in both windows
        assert all(sum(n for k, n in achieved.items() if k[1:] == (w, outcome)) for w in WINDOWS)
    ratio = values[
        (
            "tensafe_zendesk_first_response_sla_achievement_ratio",
            (("priority", "p3"), ("window", "7d")),
        )
    ]
    p3 = {r: achieved[("p3", "7d", r)] for r in ("met", "missed")}
    assert ratio == pytest.approx(p3["met"] / (p3["met"] + p3["missed"]))

    unlinked = sum(1 for o in world.zendesk["organizations"] if not o["external_id"])
    join = "tensafe_account_join_issues"
    assert values[(join, (("issue", "missing_id"), ("source", "zendesk")))] == unlinked
    assert values[(join, (("issue", "duplicate_id"), ("source", "zendesk")))] == 1
    assert values[("tensafe_zendesk_first_response_target_seconds", (("priority", "p1"),))] == 3600
    tags = [k for k in values if k[0] == "tensafe_zendesk_top_tag_tickets_24h"]
    assert 0 < len(tags) <= 10

    # Facts: the duplicate org's tickets add up on the account it claims.
    orgs = {o["id"]: o["external_id"] for o in world.zendesk["organizations"]}
    first = world.accounts[0].id
    window = NOW.timestamp() - 14 * 86400
    mine = [
        t
        for t in world.zendesk["tickets"]
        if orgs.get(t["organization_id"]) == first
        and datetime.fromisoformat(t["created_at"]).timestamp() >= window
    ]
    assert result.facts[first]["tickets_14d"] == len(mine)
    assert set(result.facts) == {a.id for a in world.accounts}
    assert result.facts[first].keys() == {
        "tickets_14d",
        "tickets_prev_14d",
        "open_breaching",
        "open",
    }

    pages = export_pages(len(world.zendesk["tickets"]), first_page=100)
    assert h.responses() == pages + 1  # the export's pages + one page of organizations
    assert check(recorder) == pages + 1


async def test_passes_over_the_held_tickets_run_off_the_event_loop(
    aiohttp_server: ServerFactory, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = world_of()
    h, _ = await harness(aiohttp_server, world, sqlite_url)
    source = await h.source()
    await source.refresh(NOW)
    later = NOW + timedelta(minutes=10)  # past ORGANIZATIONS_RECHECK: unknown orgs are looked for
    advance(world, later)
    h.clock.now = later

    def sync_meanwhile() -> None:  # what a later sync may do to the tickets it holds
        assert source.tickets is not None
        source.tickets.clear()

    build = OffLoopSpy(zendesk_metrics.build, meanwhile=sync_meanwhile)
    stale = OffLoopSpy(zendesk_source.stale_ids)
    unknown = OffLoopSpy(zendesk_source.names_unknown_organization)
    monkeypatch.setattr(zendesk_metrics, "build", build)
    monkeypatch.setattr(zendesk_source, "stale_ids", stale)
    monkeypatch.setattr(zendesk_source, "names_unknown_organization", unknown)
    values = samples((await source.refresh(later)).families)
    assert build.ran_off_loop and stale.ran_off_loop and unknown.ran_off_loop
    assert source.tickets == {}  # the loop emptied the live dict while the thread computed...
    assert_matches(values, world, later)  # ...and the metrics are those of the tickets held


async def test_restart_continues_from_the_persisted_cursor(
    aiohttp_server: ServerFactory, state_db_url: str
) -> None:
    world = world_of()
    h, recorder = await harness(aiohttp_server, world, state_db_url)
    first = await h.source()
    await first.refresh(NOW)
    await first.aclose()
    synced = h.responses()

    later = NOW + timedelta(minutes=10)
    advance(world, later)
    h.clock.now = later
    restarted = await h.source()  # new engine, StateStore and source on the same database
    values = samples((await restarted.refresh(later)).families)
    assert h.responses() - synced == 1  # one export page, no re-export, no org listing
    assert_matches(values, world, later)
    state = restarted.context.state
    assert (await state.get(CURSOR_NS, "tickets"))["synced"] is True
    assert len(await state.get_all(TICKET_NS)) == values[("tensafe_zendesk_tracked_tickets", ())]
    check(recorder)


async def test_429_is_honoured_and_5xx_retried(
    aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    world = world_of(200)
    h, _ = await harness(aiohttp_server, world, sqlite_url, Faults(retry_after=1))
    source = await h.source()
    h.faults.queue("429", "500", "503")
    started = time.monotonic()
    values = samples((await source.refresh(NOW)).families)
    assert time.monotonic() - started >= 1.0  # waited the Retry-After second
    assert h.stats.rate_limited["zendesk"] == 1
    assert h.responses("500") == h.responses("503") == 1
    assert_matches(values, world, NOW)


async def test_export_rate_limit_is_respected(
    aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    # The fake allows 2 export requests per second; the source is paced at 100/min.
    world = world_of(2100)
    h, _ = await harness(
        aiohttp_server, world, sqlite_url, incremental_limit_per_minute=2, limit_window_seconds=1.0
    )
    source = await h.source(rate_limit_per_minute=100)
    values = samples((await source.refresh(NOW)).families)
    assert h.stats.rate_limited["zendesk"] == 0
    assert h.responses() == export_pages(2100, first_page=100) + 1
    assert_matches(values, world, NOW)


async def runner_for(h: Harness, source: ZendeskSource) -> tuple[Runner, ScheduledSource]:
    scheduled = ScheduledSource(source, source.cfg)
    return Runner([scheduled], source.context.state, h.stats, h.clock), scheduled


@pytest.mark.parametrize("fault", ["timeout", "malformed"])
async def test_failed_refresh_keeps_old_values(
    aiohttp_server: ServerFactory, sqlite_url: str, fault: Any
) -> None:
    world = world_of(200)
    h, _ = await harness(aiohttp_server, world, sqlite_url, Faults(timeout_seconds=2.0))
    runner, scheduled = await runner_for(h, await h.source(request_timeout=0.3, max_retries=0))
    assert await runner.refresh_once(scheduled)
    before = runner.current().text

    advance(world, NOW + timedelta(minutes=5))
    h.clock.advance(minutes=5)
    h.faults.queue(fault)
    assert not await runner.refresh_once(scheduled)
    assert h.stats.errors[("zendesk", f"refresh_{fault}")] == 1
    assert h.stats.errors[("zendesk", fault)] == 1
    assert h.stats.source("zendesk").up is False
    assert runner.current().text == before  # no false zeros

    assert await runner.refresh_once(scheduled)  # and it recovers on the next refresh
    assert_matches(samples_from_text(runner.current().text), world, h.clock.now)


def samples_from_text(text: bytes) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


async def test_mid_pagination_failure_loses_and_doubles_nothing(
    aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    world = world_of(2600)
    h, _ = await harness(aiohttp_server, world, sqlite_url)
    h.faults.fail_page_after = 1  # the first page (start_time) and one cursor page succeed
    source = await h.source(max_retries=1)
    with pytest.raises(UpstreamError) as failed:
        await source.refresh(NOW)
    assert failed.value.kind == "server_error"
    assert len(await source.context.state.get_all(TICKET_NS)) > 0
    assert (await source.context.state.get(CURSOR_NS, "tickets"))["synced"] is False

    h.faults.fail_page_after = None
    before = h.responses()
    values = samples((await source.refresh(NOW)).families)
    pages = export_pages(2600, first_page=100)
    assert h.responses() - before == pages - 2 + 1  # resumed after 2 pages; + organizations
    assert_matches(values, world, NOW)


async def test_series_vanish_when_nothing_is_left_to_measure(
    aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    world = world_of(0)
    rng = world.rng
    org = world.zendesk["organizations"][0]
    for ticket_id in (1, 2):
        ticket, metric = zendesk_world.fresh_ticket(
            rng, ticket_id, NOW.timestamp() - 7200, (zendesk_world.USER_ID_BASE, org["id"])
        )
        ticket.update(priority="urgent", tags=["gpu_quota"])
        world.zendesk["tickets"].append(ticket)
        world.zendesk["ticket_metrics"].append(metric)
    h, _ = await harness(aiohttp_server, world, sqlite_url)
    source = await h.source()
    values = samples((await source.refresh(NOW)).families)
    p1 = (("priority", "p1"),)
    assert values[("tensafe_zendesk_oldest_unanswered_age_seconds", p1)] == 7200
    assert values[("tensafe_zendesk_sla_breaching_tickets", p1)] == 2
    assert values[("tensafe_zendesk_top_tag_tickets_24h", (("tag", "gpu_quota"),))] == 2

    later = NOW + timedelta(hours=25)
    tickets, metrics = world.zendesk["tickets"], world.zendesk["ticket_metrics"]
    zendesk_world.reply(tickets[0], metrics[0], NOW.timestamp() + 60)
    zendesk_world.solve(tickets[1], metrics[1], NOW.timestamp() + 120)
    values = samples((await source.refresh(later)).families)
    assert ("tensafe_zendesk_oldest_unanswered_age_seconds", p1) not in values
    assert not [k for k in values if k[0] == "tensafe_zendesk_top_tag_tickets_24h"]
    assert values[("tensafe_zendesk_sla_breaching_tickets", p1)] == 0  # fixed grid: a real zero
    assert values[("tensafe_zendesk_open_tickets", (*p1, ("status", "new")))] == 0
    assert values[("tensafe_zendesk_open_tickets", (*p1, ("status", "open")))] == 1


async def test_wrong_token_is_an_auth_error_that_never_shows_the_token(
    aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    world = world_of(50)
    h, _ = await harness(aiohttp_server, world, sqlite_url)
    wrong = "zd-wrong-token-0000"
    source = await h.source(token=SecretStr(wrong))
    runner, scheduled = await runner_for(h, source)
    with capture_logs() as logs:
        assert not await runner.refresh_once(scheduled)
    assert h.stats.errors[("zendesk", "refresh_auth")] == 1
    assert h.responses("401") == 1  # not retried
    assert wrong not in repr(logs) and TOKEN not in repr(logs)
    with pytest.raises(UpstreamError) as failed:
        await source.refresh(NOW)
    assert failed.value.kind == "auth" and wrong not in str(failed.value)
    assert wrong not in repr(source.cfg)


async def test_create_builds_the_named_source(
    aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    h, _ = await harness(aiohttp_server, world_of(10), sqlite_url)
    engine = create_engine(sqlite_url)
    await migrate(engine)
    source = create(h.config(), SourceContext(StateStore(engine), h.stats, h.clock, NoFacts()))
    assert source.name == "zendesk"
    await source.refresh(NOW)
    await source.aclose()


async def test_world_file_ticket_at_the_sla_boundary(
    aiohttp_server: ServerFactory, sqlite_url: str, tmp_path: Path
) -> None:
    # The example from docs/world-file/zendesk.md: an urgent ticket exactly 1h old, no reply.
    doc = (Path(__file__).parents[2] / "docs" / "world-file" / "zendesk.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "world.yaml").write_text(example)
    world = load(tmp_path / "world.yaml")
    h, _ = await harness(aiohttp_server, world, sqlite_url)
    source = await h.source()
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    p1 = (("priority", "p1"),)
    values = samples((await source.refresh(now)).families)
    assert values[("tensafe_zendesk_oldest_unanswered_age_seconds", p1)] == 3600
    assert values[("tensafe_zendesk_sla_breaching_tickets", p1)] == 0
    values = samples((await source.refresh(now + timedelta(seconds=1))).families)
    assert values[("tensafe_zendesk_sla_breaching_tickets", p1)] == 1
    facts = (await source.refresh(now + timedelta(seconds=1))).facts
    assert facts == {
        "acct_00001": {"tickets_14d": 1, "tickets_prev_14d": 0, "open_breaching": 1, "open": 1}
    }


async def test_initial_sync_spans_refreshes_with_progress(
    aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    world = world_of(2100)  # 3 export pages, paced 0.6 s apart; a refresh may page for 0.45 s
    h, _ = await harness(aiohttp_server, world, sqlite_url)
    source = await h.source(rate_limit_per_minute=100, timeout=0.6)
    with pytest.raises(UpstreamError) as unfinished:
        await source.refresh(NOW)
    assert unfinished.value.kind == "rate_limited"
    status = h.stats.source("zendesk")
    assert status.sync_total and 0 < status.sync_done < status.sync_total
    exported = h.responses()
    assert exported in (1, 2)

    restarted = await h.source()  # continues from the persisted cursor, with a normal budget
    values = samples((await restarted.refresh(NOW)).families)
    assert h.responses() == 3 + 1  # every export page once, then the organizations
    assert (status.sync_done, status.sync_total) == (1, 1)
    assert_matches(values, world, NOW)


async def test_missing_token_fails_refreshes_not_startup(
    aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    h, _ = await harness(aiohttp_server, world_of(10), sqlite_url)
    source = await h.source(token=SecretStr(""))
    with pytest.raises(UpstreamError) as failed:
        await source.refresh(NOW)
    assert failed.value.kind == "auth"
    assert h.responses() == 0
