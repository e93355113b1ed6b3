"""The journal and the ingester: what was accepted becomes alerts and deliveries exactly once,
a bad entry is set aside without holding back the others, and replicas never ingest twice."""

import asyncio
import itertools
import json
import random
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tensafe_ops.storage import create_engine, migrate
from tests.conftest import FakeClock
from tests.webhook.am import API, AUTH, am_alert, notification, webhook_app, webhook_settings
from webhook import INGESTER_KEY, ingest, sweep_once
from webhook.config import WebhookConfig
from webhook.handlers import WEBHOOK_KEY
from webhook.ingest import Answering, Ingester, ingest_pause
from webhook.intake import Policy
from webhook.journal import Journal, open_journal
from webhook.journal_sqlite import SqliteFileJournal
from webhook.metrics import WebhookStats
from webhook.store import WebhookStore
from webhook.tables import alerts, deliveries, journal_applied
from webhook.targets import IngestConfig


@dataclass
class Replica:
    engine: AsyncEngine
    store: WebhookStore
    journal: Journal
    ingester: Ingester


async def replica(db_url: str, tmp_path: Path, clock: FakeClock, **ingest: Any) -> Replica:
    engine = create_engine(db_url)
    await migrate(engine)
    cfg = WebhookConfig.model_validate(webhook_settings(tmp_path, db_url)["webhook"])
    store = WebhookStore(engine, Policy.from_config(cfg))
    journal = open_journal(engine, store.writing)
    ingester = Ingester(store, journal, WebhookStats(), IngestConfig(**ingest), clock)
    return Replica(engine, store, journal, ingester)


@pytest.fixture
async def one(state_db_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Replica]:
    r = await replica(state_db_url, tmp_path, clock, max_attempts=2)
    yield r
    await r.journal.close()
    await r.engine.dispose()


def body(*alerts: dict[str, Any]) -> str:
    return json.dumps(notification(*alerts))


async def count(engine: AsyncEngine, table: sa.Table, *where: Any) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))
            ).scalar_one()
        )


async def test_an_unparseable_entry_is_set_aside_and_the_rest_ingested(
    one: Replica, clock: FakeClock
) -> None:
    good = [body(am_alert("TenSafeAPIDown", instance=f"api-{i}")) for i in range(3)]
    ids = [await one.journal.append(good[0], clock())]
    ids.append(await one.journal.append('{"version": "4"}', clock()))  # e.g. after an upgrade
    ids += [await one.journal.append(text, clock()) for text in good[1:]]
    await one.ingester.catch_up()

    assert await count(one.engine, alerts) == 3
    assert await count(one.engine, deliveries) == 6  # PagerDuty + Slack each
    assert set(one.ingester.recent) == {ids[0], ids[2], ids[3]}
    backlog = await one.journal.backlog(clock())
    assert (backlog.pending, backlog.failed) == (0, 1)
    [(kept, error)] = await one.journal.failed(10)
    assert kept.id == ids[1] and kept.body == '{"version": "4"}'
    assert "no longer a valid notification" in error
    assert one.ingester.stats.ingest_failures == 1


async def refuse_alertname(engine: AsyncEngine, alertname: str) -> None:
    """A trigger that makes the database refuse one alert, as a constraint or a bad value
    would: a real failure inside the ingest transaction."""
    async with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON webhook_alerts "
                f"WHEN NEW.alertname = '{alertname}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
            return
        await conn.exec_driver_sql(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.alertname = '{alertname}' THEN RAISE EXCEPTION 'refused'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        await conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON webhook_alerts "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        )


async def test_an_entry_the_database_refuses_is_retried_alone_then_set_aside(
    one: Replica, clock: FakeClock
) -> None:
    await refuse_alertname(one.engine, "Poison")
    ids = [
        await one.journal.append(body(am_alert("HighCPU", "warning", instance="w-1")), clock()),
        await one.journal.append(body(am_alert("Poison", "warning")), clock()),
        await one.journal.append(body(am_alert("HighCPU", "warning", instance="w-2")), clock()),
    ]
    with pytest.raises(sa.exc.DBAPIError):
        await one.ingester.catch_up()  # the batch fails, then each entry alone: 2 go in
    assert await count(one.engine, alerts) == 2
    assert (await one.journal.backlog(clock())).pending == 1  # one attempt counted
    with pytest.raises(sa.exc.DBAPIError):
        await one.ingester.catch_up()  # the second attempt (max_attempts=2): set aside
    backlog = await one.journal.backlog(clock())
    assert (backlog.pending, backlog.failed) == (0, 1)
    [(kept, error)] = await one.journal.failed(10)
    assert (kept.id, kept.attempts) == (ids[1], 2) and "refused" in error
    assert "INSERT" not in error  # no SQL, no parameters (alert content)
    assert set(one.ingester.recent) == {ids[0], ids[2]}
    assert one.ingester.stats.ingest_failures == 1
    await one.ingester.catch_up()  # nothing left: the queue moves on


async def test_replicas_ingest_every_entry_exactly_once(
    pg_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    a = await replica(pg_url, tmp_path / "a", clock, batch_size=7)
    b = await replica(pg_url, tmp_path / "b", clock, batch_size=5)
    try:
        texts = [body(am_alert("HighMemory", "warning", instance=f"w-{i}")) for i in range(60)]
        ids = [await (a if i % 2 else b).journal.append(t, clock()) for i, t in enumerate(texts)]
        await asyncio.gather(a.ingester.catch_up(), b.ingester.catch_up())
        assert set(a.ingester.recent).isdisjoint(b.ingester.recent)
        assert set(a.ingester.recent) | set(b.ingester.recent) == set(ids)
        assert await count(a.engine, alerts) == 60
        assert await count(a.engine, deliveries) == 60
        assert (await a.journal.backlog(clock())).pending == 0
    finally:
        for r in (a, b):
            await r.journal.close()
            await r.engine.dispose()


async def test_entries_left_by_a_stopped_process_are_ingested_at_start(
    aiohttp_client: Any, tmp_path: Path, state_db_url: str, clock: FakeClock
) -> None:
    r = await replica(state_db_url, tmp_path, clock)
    await r.journal.append(body(am_alert("DatabaseDown")), clock())
    await r.journal.close()
    await r.engine.dispose()  # accepted, then the process went away before ingesting

    client = await aiohttp_client(webhook_app(tmp_path, state_db_url, clock))
    async with asyncio.timeout(10):
        while True:  # the background loop, not the test, ingests it
            response = await client.get("/api/v1/alerts", headers=API)
            found = (await response.json())["alerts"]
            if found:
                break
            await asyncio.sleep(0.05)
    assert [a["alertname"] for a in found] == ["DatabaseDown"]


async def test_journal_backlog_is_a_metric(
    aiohttp_client: Any, tmp_path: Path, state_db_url: str, clock: FakeClock
) -> None:
    client = await aiohttp_client(webhook_app(tmp_path, state_db_url, clock))
    ingester = client.app[INGESTER_KEY]
    await ingester.stop()  # hold ingesting back
    response = await client.post(
        "/api/v1/alerts", json=notification(am_alert("HighErrorRate")), headers=AUTH
    )
    assert response.status == 200
    clock.advance(seconds=42)
    await sweep_once(client.app[WEBHOOK_KEY])
    metrics = await (await client.get("/metrics")).text()
    assert "tensafe_webhook_notifications_accepted_total 1.0" in metrics
    assert "tensafe_webhook_journal_pending 1.0" in metrics
    assert "tensafe_webhook_journal_oldest_pending_age_seconds 42.0" in metrics
    await ingester.catch_up()
    await sweep_once(client.app[WEBHOOK_KEY])
    metrics = await (await client.get("/metrics")).text()
    assert "tensafe_webhook_notifications_ingested_total 1.0" in metrics
    assert "tensafe_webhook_journal_pending 0.0" in metrics
    assert "tensafe_webhook_journal_oldest_pending_age_seconds 0.0" in metrics


async def test_a_crash_between_the_two_sqlite_commits_applies_nothing_twice(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The SQLite journal is a file of its own: the ingest commits the alerts first, then
    deletes the entries there. Dying in between leaves entries that were applied already."""
    r = await replica(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}", tmp_path, clock)
    try:
        assert isinstance(r.journal, SqliteFileJournal)
        assert r.journal.path == tmp_path / "state-webhook-journal.db"
        ids = [
            await r.journal.append(body(am_alert("HighCPU", "warning", instance=f"w-{i}")), clock())
            for i in range(3)
        ]
        forget = r.journal.forget

        async def crash(handled: set[int]) -> None:
            raise OSError("killed before the journal file was cleaned")

        r.journal.forget = crash  # type: ignore[method-assign]
        await r.ingester.ingest_once()
        assert await count(r.engine, alerts) == 3
        backlog = await r.journal.backlog(clock())
        assert (backlog.pending, backlog.failed) == (3, 0)  # still there, but applied
        assert [e.attempts for e in await r.journal.pending(10)] == [0, 0, 0]  # no failure

        r.journal.forget = forget  # type: ignore[method-assign]
        r.ingester.recent.clear()
        await r.ingester.catch_up()
        assert (await r.journal.backlog(clock())).pending == 0
        assert await count(r.engine, alerts) == 3 and await count(r.engine, deliveries) == 3
        assert r.ingester.recent == {}  # not applied a second time, not even as duplicates
        assert r.ingester.stats.duplicates == 0 and len(ids) == 3
    finally:
        await r.journal.close()
        await r.engine.dispose()


async def test_failed_notifications_are_listed_and_retried_through_the_api(
    aiohttp_client: Any, tmp_path: Path, state_db_url: str, clock: FakeClock
) -> None:
    app = webhook_app(tmp_path, state_db_url, clock, ingest={"max_attempts": 1})
    client = await aiohttp_client(app)
    engine = client.app[WEBHOOK_KEY].store.engine
    await refuse_alertname(engine, "Poison")
    response = await client.post(
        "/api/v1/alerts", json=notification(am_alert("Poison", "warning")), headers=AUTH
    )
    journal_id = (await response.json())["id"]
    async with asyncio.timeout(10):  # the background ingester's one attempt: set aside
        while True:
            listed = await (await client.get("/api/v1/notifications/failed", headers=API)).json()
            if listed["notifications"]:
                break
            await asyncio.sleep(0.02)
    [failed] = listed["notifications"]
    assert (failed["id"], failed["attempts"]) == (journal_id, 1)
    assert "refused" in failed["last_error"] and '"Poison"' in failed["body"]

    async with engine.begin() as conn:  # the cause is fixed
        on_table = "" if conn.dialect.name == "sqlite" else " ON webhook_alerts"
        await conn.exec_driver_sql(f"DROP TRIGGER refuse{on_table}")
    retried = await client.post(f"/api/v1/notifications/{journal_id}/retry", headers=API)
    assert (retried.status, await retried.json()) == (200, {"id": journal_id, "state": "pending"})
    again = await client.post(f"/api/v1/notifications/{journal_id}/retry", headers=API)
    assert again.status == 404  # no longer failed
    await client.app[INGESTER_KEY].catch_up()
    alerts_now = await (await client.get("/api/v1/alerts", headers=API)).json()
    assert [a["alertname"] for a in alerts_now["alerts"]] == ["Poison"]
    listed = await (await client.get("/api/v1/notifications/failed", headers=API)).json()
    assert listed["notifications"] == []
    assert (await client.get("/api/v1/notifications/failed")).status == 401


async def test_the_dispatcher_hears_where_deliveries_went_as_soon_as_they_commit(
    one: Replica, clock: FakeClock
) -> None:
    """Told right after the ingest commit (before the journal is tidied up), with the
    destinations of the rows added, so it drains those without reading the outbox."""
    events: list[object] = []
    one.ingester.on_ingested = events.append
    forget = one.journal.forget

    async def forgetting(handled: set[int]) -> None:
        events.append("forget")
        await forget(handled)

    one.journal.forget = forgetting  # type: ignore[method-assign]
    page = body(am_alert("TenSafeAPIDown", instance="api-1"))
    await one.journal.append(page, clock())
    await one.journal.append(body(am_alert("HighCPU", "warning", instance="w-1")), clock())
    await one.ingester.catch_up()
    woken = {("pagerduty", "default"), ("slack", "incidents"), ("slack", "alerts")}
    assert events == [woken, "forget"]

    events.clear()
    await one.journal.append(page, clock())  # a repeat: no new delivery, nobody woken
    await one.ingester.catch_up()
    assert events == ["forget"]


async def test_sqlite_journal_entries_applied_are_deleted_together_and_hidden_meanwhile(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Deleting applied entries from the journal file (and their records in the state
    database) is queued, so several ingest batches share those commits; queued entries are
    no longer pending for anyone."""
    r = await replica(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}", tmp_path, clock)
    try:
        assert isinstance(r.journal, SqliteFileJournal)
        for i in range(3):
            await r.journal.append(body(am_alert("HighCPU", "warning", instance=f"w-{i}")), clock())
        while await r.ingester.ingest_once():  # batches, without waiting for the deletes
            pass
        assert await r.journal.pending(10) == []
        assert (await r.journal.backlog(clock())).pending == 0
        with sqlite3.connect(r.journal.path) as raw:
            assert raw.execute("SELECT count(*) FROM notifications").fetchone() == (3,)
        assert await count(r.engine, journal_applied) == 3  # applied, as a crash would find them

        await r.journal.tidy()
        with sqlite3.connect(r.journal.path) as raw:
            assert raw.execute("SELECT count(*) FROM notifications").fetchone() == (0,)
        assert await count(r.engine, journal_applied) == 0
        assert await count(r.engine, alerts) == 3
    finally:
        await r.journal.close()
        await r.engine.dispose()


def test_ingesting_yields_to_receiving_only_when_answers_pile_up() -> None:
    config = IngestConfig(busy_share=0.1, busy_receiving=2, yield_lag=10)
    busy = {"backlog": True, "receiving": True, "lag": 1.0, "answering": 3.0, "config": config}
    assert ingest_pause(0.01, **busy) == pytest.approx(0.09)  # ingesting takes 10% at most
    # Any of these and it ingests at once: the page is not held back.
    assert ingest_pause(0.01, **(busy | {"answering": 0.5})) == 0  # answers keep up
    assert ingest_pause(0.01, **(busy | {"backlog": False})) == 0  # nothing waits behind
    assert ingest_pause(0.01, **(busy | {"receiving": False})) == 0  # nobody to yield to
    assert ingest_pause(0.01, **(busy | {"lag": 10.0})) == 0  # the backlog is old already
    never = busy | {"config": IngestConfig(busy_share=1.0)}
    assert ingest_pause(0.01, **never) == 0


async def test_ingest_takes_small_batches_while_notifications_arrive(
    one: Replica, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the receiver accepts notifications, a batch is `busy_batch_size` (a full batch
    is tens of milliseconds of CPU that every request arriving meanwhile would wait out),
    even at an instant when none is in flight; once arrivals stop, or the backlog is older
    than `yield_lag`, batches are full again."""
    for i in range(100):
        await one.journal.append(body(am_alert("HighCPU", "warning", instance=f"w-{i}")), clock())
    config = one.ingester.config
    one.ingester.stats.accepted += 1  # what the receiver counts as it answers 200
    assert one.ingester.receiving() == 0  # none in flight at this instant
    assert await one.ingester.ingest_once() == config.busy_batch_size
    assert await one.ingester.ingest_once() == config.busy_batch_size

    monkeypatch.setattr(ingest, "ARRIVAL_WINDOW", 0.0)  # a second without arrivals
    assert await one.ingester.ingest_once() == config.batch_size

    monkeypatch.undo()
    one.ingester.stats.accepted += 1
    assert await one.ingester.ingest_once() == config.busy_batch_size
    clock.advance(seconds=config.yield_lag)  # the oldest waiting is now that old
    await one.ingester.ingest_once()
    assert await one.ingester.ingest_once() == config.batch_size


def test_answering_is_the_time_weighted_count_of_requests_in_flight() -> None:
    answering = Answering(window=1.0)
    assert answering.average() == 0.0
    answering.sample(100.0, 4)  # four in flight for 0.25 s, then none for 0.75 s
    answering.sample(100.25, 0)
    answering.sample(101.0, 0)
    assert answering.average() == pytest.approx(1.0)
    for step in range(1, 21):  # then one at a time, all along: the burst falls out
        answering.sample(101.0 + step * 0.1, 1)
    assert answering.average() == pytest.approx(1.0, abs=0.1)
    answering.sample(103.1, 0)
    assert answering.average() == pytest.approx(1.0, abs=0.1)


def test_answering_keeps_its_sum_as_the_window_slides() -> None:
    """The running sum equals the window's sum computed afresh, after thousands of samples
    came and went at irregular steps."""
    answering = Answering(window=1.0)
    now, steps = 1000.0, random.Random(7)
    for _ in range(5000):
        now += steps.choice((0.001, 0.01, 0.05, 0.3, 1.5))
        answering.sample(now, steps.randrange(0, 40))
        samples = list(answering.samples)
        fresh = sum(c * (t2 - t1) for (t1, c), (t2, _) in itertools.pairwise(samples))
        span = samples[-1][0] - samples[0][0]
        assert answering.average() == pytest.approx(fresh / span if span > 0 else 0.0, abs=1e-9)


def journal_bytes(path: Path) -> int:
    """The journal file and its write-ahead log on disk."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def test_the_sqlite_journal_file_shrinks_back_after_a_burst(
    tmp_path: Path, clock: FakeClock
) -> None:
    r = await replica(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}", tmp_path, clock)
    try:
        assert isinstance(r.journal, SqliteFileJournal)
        await r.journal.append(body(am_alert("Warmup", "warning")), clock())
        await r.ingester.catch_up()
        await r.journal.tidy()
        idle = journal_bytes(r.journal.path)
        burst = []
        for i in range(200):  # ~20 MB: a storm of notifications with long descriptions
            alert = am_alert("WorkerCrashLoop", "warning", instance=f"w-{i}")
            alert["annotations"]["description"] = "x" * 100_000
            burst.append(r.journal.append(body(alert), clock()))
        await asyncio.gather(*burst)
        assert journal_bytes(r.journal.path) > 15_000_000
        await r.ingester.catch_up()
        await r.journal.tidy()
        assert (await r.journal.backlog(clock())).pending == 0
        assert journal_bytes(r.journal.path) < idle + 2_000_000  # not the 20 MB high-water
    finally:
        await r.journal.close()
        await r.engine.dispose()


async def test_a_notification_larger_than_a_slice_is_applied_whole(
    one: Replica, clock: FakeClock
) -> None:
    """Ingest routes and writes big notifications in slices (the loop breathes between
    them): every alert and delivery is still written once, and a repeat touches them all."""
    many = [am_alert("Flood", "warning", instance=f"i-{n}") for n in range(1234)]
    await one.journal.append(body(*many), clock())
    await one.ingester.catch_up()
    assert await count(one.engine, alerts) == 1234
    assert await count(one.engine, deliveries) == 1234
    clock.advance(minutes=5)
    journal_id = await one.journal.append(body(*many), clock())
    await one.ingester.catch_up()
    assert one.ingester.recent[journal_id].duplicates == 1234
    assert await count(one.engine, alerts, alerts.c.last_seen_at == clock().timestamp()) == 1234
