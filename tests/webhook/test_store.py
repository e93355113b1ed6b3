"""The store on its own: outbox leases across claimers, retries, the stale sweep, staleness."""

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from tensafe_ops.storage import create_engine, migrate
from tests.conftest import FakeClock
from tests.webhook.am import am_alert, notification, resolved, webhook_settings
from webhook.config import WebhookConfig
from webhook.intake import Policy
from webhook.outbox import OUTCOME_UNKNOWN
from webhook.payload import Notification, parse_notification
from webhook.retention import Pruned
from webhook.statements import active_windows
from webhook.store import IngestResult, WebhookStore
from webhook.tables import deliveries


@pytest.fixture
async def store(state_db_url: str, tmp_path) -> AsyncIterator[WebhookStore]:  # type: ignore[no-untyped-def]
    engine = create_engine(state_db_url)
    await migrate(engine)
    cfg = WebhookConfig.model_validate(webhook_settings(tmp_path, state_db_url)["webhook"])
    yield WebhookStore(engine, Policy.from_config(cfg))
    await engine.dispose()


def parsed(*alerts: dict[str, object]):  # type: ignore[no-untyped-def]
    return parse_notification(json.dumps(notification(*alerts)).encode())


async def accept_all(
    store: WebhookStore, batch: Sequence[Notification], now: datetime
) -> list[IngestResult]:
    """What ingesting `batch` in one transaction does (webhook.ingest without the journal)."""
    async with store.writing() as conn:
        return await store.apply(conn, [(n, now) for n in batch])


async def accept(store: WebhookStore, notification: Notification, now: datetime) -> IngestResult:
    [result] = await accept_all(store, [notification], now)
    return result


async def test_claims_never_overlap_and_leases_expire(
    store: WebhookStore, clock: FakeClock
) -> None:
    many = [am_alert("HighCPU", "warning", instance=f"node-{i}:9100") for i in range(30)]
    result = await accept(store, parsed(*many), clock())
    assert result.deliveries == 30
    batches = await asyncio.gather(*(store.claim("slack", 10, clock(), 60) for _ in range(4)))
    ids = [d.id for batch in batches for d in batch]
    assert len(ids) == len(set(ids)) == 30  # every row claimed exactly once
    assert await store.claim("slack", 10, clock(), 60) == []  # all leased
    clock.advance(seconds=61)
    assert len(await store.claim("slack", 50, clock(), 60)) == 30  # leases ran out: claimable


async def test_retry_waits_sent_is_final(store: WebhookStore, clock: FakeClock) -> None:
    await accept(store, parsed(am_alert("TenSafeAPIDown")), clock())
    page, note = await store.claim("pagerduty", 10, clock(), 60) + await store.claim(
        "slack", 10, clock(), 60
    )
    await store.mark_retry(page.id, clock(), clock() + timedelta(seconds=30), "503 from PagerDuty")
    await store.mark_sent(note.id, clock(), 200)
    assert await store.claim("pagerduty", 10, clock(), 60) == []
    clock.advance(seconds=31)
    [again] = await store.claim("pagerduty", 10, clock(), 60)
    assert (again.id, again.attempts) == (page.id, 1)
    clock.advance(hours=1)
    assert await store.claim("slack", 10, clock(), 60) == []  # sent once, never again


async def test_stale_alerts_are_closed_and_their_pages_resolved(
    store: WebhookStore, clock: FakeClock
) -> None:
    quiet = am_alert("DatabaseDown", instance="db-1:5432")
    chatty = am_alert("DatabaseDown", instance="db-2:5432")
    await accept(store, parsed(quiet, chatty), clock())
    assert await store.staleness(None, 43200) == 43200  # no repeat seen yet: the default
    for _ in range(3):  # Alertmanager repeats `chatty` every 4 h; `quiet` was silenced
        clock.advance(hours=4)
        await accept(store, parsed(chatty), clock())
    staleness = await store.staleness(None, 43200)
    assert staleness == 3 * 4 * 3600
    clock.advance(seconds=1)
    result = await store.sweep(clock(), staleness)
    assert result.stale == ["critical"]
    states = {a["fingerprint"]: a["state"] for a in await store.list_alerts(None, None, 10)}
    assert states == {quiet["fingerprint"]: "stale", chatty["fingerprint"]: "firing"}
    resolves = [d for d in await store.list_deliveries(None, 50) if d["kind"] == "resolve"]
    assert [(d["target"], json.loads(d["payload"])["dedup_key"]) for d in resolves] == [
        ("pagerduty", f"tensafe:{quiet['fingerprint']}:{quiet['startsAt']}")
    ]
    assert (await store.sweep(clock(), staleness)).stale == []
    # The real resolve arriving late closes it for good and tells Slack; no second PD resolve.
    late = await accept(store, parsed(resolved(quiet, clock())), clock())
    assert late.resolved == 1 and late.deliveries == 1


async def test_ha_duplicates_seconds_apart_are_not_a_repeat_interval(
    store: WebhookStore, clock: FakeClock
) -> None:
    alert = am_alert("HighLatencyP95", "warning")
    await accept(store, parsed(alert), clock())
    clock.advance(seconds=15)  # the second Alertmanager of the pair, peer_timeout later
    await accept(store, parsed(alert), clock())
    assert await store.staleness(None, 43200) == 43200
    assert await store.staleness(600, 43200) == 600  # explicit configuration wins


async def test_a_windows_matchers_are_parsed_once_not_every_batch(
    store: WebhookStore, clock: FakeClock
) -> None:
    """Ingest reads the active windows each batch; their regexes are not compiled again."""
    hour = timedelta(hours=1)
    matchers = ['alertname=~"Disk.*"', 'team!="batch"']
    await store.add_maintenance(
        clock() - hour, clock() + hour, matchers, "upgrade", "dana", clock()
    )
    async with store.engine.connect() as conn:
        [first] = await active_windows(conn, clock(), clock())
        [second] = await active_windows(conn, clock(), clock())
    assert [str(m) for m in first.matchers] == ['alertname=~"Disk.*"', 'team!="batch"']
    assert second.matchers is first.matchers
    assert first.matchers[0].matches({"alertname": "DiskFull", "team": "api"})
    result = await accept(store, parsed(am_alert("DiskFull", "critical")), clock())
    assert {target for target, _ in result.destinations} == {"slack"}  # the page held back


async def test_silenced_critical_breaches_before_going_stale(
    store: WebhookStore, clock: FakeClock
) -> None:
    alert = am_alert("PrivacyBudgetExhausted", tenant="acct_00007")
    await accept(store, parsed(alert), clock())
    clock.advance(hours=13)  # never repeated (silenced): past respond_by and past 12 h staleness
    result = await store.sweep(clock(), 43200)
    assert (result.breaches, result.stale) == (["critical"], ["critical"])
    clock.advance(days=8)  # the seen key expires; a very late duplicate still pages nobody
    await store.sweep(clock(), 43200)
    again = await accept(store, parsed(alert), clock())
    assert (again.new_alerts, again.deliveries) == (0, 0)


async def test_retention_prunes_what_is_finished_and_keeps_what_is_in_play(
    store: WebhookStore, clock: FakeClock
) -> None:
    old_done, old_waiting, firing = (
        am_alert("HighCPU", "warning", instance=f"node-{i}:9100") for i in range(3)
    )

    async def send_all_but_old_waiting() -> None:
        for delivery in await store.claim("slack", 10, clock(), 60):
            if old_waiting["labels"]["instance"] not in json.dumps(delivery.payload):
                await store.mark_sent(delivery.id, clock(), 200)

    await accept(store, parsed(old_done, old_waiting, firing), clock())
    await send_all_but_old_waiting()
    clock.advance(minutes=5)
    await accept(
        store, parsed(resolved(old_done, clock()), resolved(old_waiting, clock())), clock()
    )
    await send_all_but_old_waiting()  # the resolved follow-ups
    clock.advance(days=31)
    pruned = await store.prune(clock(), 30 * 86400)
    # old_done: resolved a month ago, its messages sent: gone with its 2 deliveries.
    # old_waiting: resolved too, but its messages were never sent: kept, with the alert they
    # render from. firing: still firing, whatever its age (its sent message goes).
    assert (pruned.alerts, pruned.deliveries) == (1, 3)
    left = {a["fingerprint"] for a in await store.list_alerts(None, None, 10)}
    assert left == {old_waiting["fingerprint"], firing["fingerprint"]}
    assert len(await store.list_deliveries("pending", 10)) == 2
    assert await store.prune(clock(), 30 * 86400) == Pruned()


async def test_migration_downgrades_and_upgrades_again(state_db_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from tensafe_ops.storage import _upgrade

    def downgrade(connection) -> None:  # type: ignore[no-untyped-def]
        cfg = Config()
        cfg.set_main_option("script_location", "tensafe_ops:migrations")
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0001")

    engine = create_engine(state_db_url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
            assert not any(t.startswith("webhook_") for t in tables)
            await conn.run_sync(_upgrade)
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert {"webhook_alerts", "webhook_deliveries", "webhook_seen"} <= tables
    finally:
        await engine.dispose()


async def test_a_batch_keeps_per_notification_results(
    store: WebhookStore, clock: FakeClock
) -> None:
    same = parsed(am_alert("QueueBacklog", "warning", queue="training"))
    others = [parsed(am_alert("HighMemory", "warning", instance=f"w-{i}")) for i in range(5)]
    results = await accept_all(store, [same] * 10 + others, clock())
    assert [r.new_alerts for r in results] == [1] + [0] * 9 + [1] * 5  # the first copy counts
    assert [r.duplicates for r in results] == [0] + [1] * 9 + [0] * 5
    assert [r.deliveries for r in results] == [1] + [0] * 9 + [1] * 5
    assert len(await store.list_deliveries("pending", 100)) == 6


async def leased_ids(store: WebhookStore, clock: FakeClock) -> set[int]:
    """The deliveries holding a live lease, read from the table itself."""
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(deliveries.c.id).where(deliveries.c.lease_until > clock().timestamp())
        )
        return set(rows.scalars())


async def test_a_claim_leases_at_most_its_limit(store: WebhookStore, clock: FakeClock) -> None:
    many = [am_alert("HighCPU", "warning", instance=f"node-{i}:9100") for i in range(30)]
    await accept(store, parsed(*many), clock())

    first = await store.claim("slack", 5, clock(), 60)
    assert len(first) == 5
    assert await leased_ids(store, clock) == {d.id for d in first}

    # Concurrent claimers (row locks contended on PostgreSQL): still at most 5 rows each.
    batches = await asyncio.gather(*(store.claim("slack", 5, clock(), 60) for _ in range(4)))
    assert [len(batch) for batch in batches] == [5] * 4
    claimed = {d.id for batch in [first, *batches] for d in batch}
    assert len(claimed) == 25
    assert await leased_ids(store, clock) == claimed


async def test_claim_by_destination_and_release(store: WebhookStore, clock: FakeClock) -> None:
    storm = [am_alert("HighCPU", "warning", instance=f"node-{i}:9100") for i in range(3)]
    await accept(store, parsed(*storm, am_alert("TenSafeAPIDown")), clock())
    assert await store.due_destinations("slack", clock()) == ["alerts", "incidents"]

    [incident] = await store.claim("slack", 10, clock(), 60, destination="incidents")
    assert incident.destination == "incidents"
    held = await store.claim("slack", 10, clock(), 60, destination="alerts")
    assert [d.destination for d in held] == ["alerts"] * 3
    assert await store.claim("slack", 10, clock(), 60) == []  # all leased
    # Leased rows still count as due: their claimer may have died (webhook.owners).
    assert await store.due_destinations("slack", clock()) == ["alerts", "incidents"]
    await store.mark_sent(incident.id, clock(), 200)
    assert await store.due_destinations("slack", clock()) == ["alerts"]

    # A stopping dispatcher gives back what it did not send: claimable right away, not
    # after the 60 s lease; a delivery sent meanwhile stays sent.
    await store.mark_sent(held[0].id, clock(), 200)
    await store.release([d.id for d in held], clock())
    clock.advance(seconds=1)
    again = await store.claim("slack", 10, clock(), 60)
    assert [d.id for d in again] == [d.id for d in held[1:]]
    assert await leased_ids(store, clock) == {d.id for d in held[1:]}


async def test_taking_a_destination_over_voids_its_leases_and_no_other(
    store: WebhookStore, clock: FakeClock
) -> None:
    """The replica that held a destination is gone (its lock died with it): the rows it had
    claimed are claimable at once, not after their lease; other destinations keep theirs."""
    storm = [am_alert("HighCPU", "warning", instance=f"node-{i}:9100") for i in range(3)]
    await accept(store, parsed(*storm, am_alert("TenSafeAPIDown")), clock())
    held = await store.claim("slack", 10, clock(), 600, destination="alerts")
    [incident] = await store.claim("slack", 10, clock(), 600, destination="incidents")
    await store.mark_sent(held[0].id, clock(), 200)
    clock.advance(seconds=1)

    taken = await store.take_over("slack", "alerts", clock())
    assert taken.released == 2
    assert taken.last_attempt == clock() - timedelta(seconds=1)  # held[0] was sent then
    again = await store.claim("slack", 10, clock(), 600)
    assert [d.id for d in again] == [d.id for d in held[1:]]
    assert await leased_ids(store, clock) == {incident.id, *(d.id for d in held[1:])}


async def test_outcomes_recorded_together_share_one_commit(
    store: WebhookStore, clock: FakeClock
) -> None:
    """Each commit is an fsync on SQLite (and a round trip on PostgreSQL): outcomes that
    come in while one is being written are written together, and each caller still learns
    its own is stored."""
    many = [am_alert("HighCPU", "warning", instance=f"node-{i}:9100") for i in range(12)]
    await accept(store, parsed(*many), clock())
    claimed = await store.claim("slack", 50, clock(), 60)
    commits: list[object] = []

    def counted(conn: object) -> None:
        commits.append(conn)

    sa.event.listen(store.engine.sync_engine, "commit", counted)
    try:
        await asyncio.gather(*(store.mark_sent(d.id, clock(), 200) for d in claimed))
    finally:
        sa.event.remove(store.engine.sync_engine, "commit", counted)
    assert len(commits) <= 2  # the first alone, the eleven that queued behind it together
    async with store.engine.connect() as conn:
        states = (await conn.execute(sa.select(deliveries.c.state, deliveries.c.attempts))).all()
    assert sorted(states) == [("sent", 1)] * 12


async def test_a_slack_attempt_is_recorded_before_it_starts_and_only_under_its_claim(
    store: WebhookStore, clock: FakeClock
) -> None:
    """`sending` is written only while the claim that returned the delivery still holds: once
    another replica took the destination over (voiding that claim), the old claimer cannot
    start it. What a dead sender left `sending` is dead-lettered, outcome unknown."""
    storm = [am_alert("HighCPU", "warning", instance=f"node-{i}:9100") for i in range(3)]
    await accept(store, parsed(*storm), clock())
    first, second, third = await store.claim("slack", 10, clock(), 60)
    assert await store.start_sending(first, clock())
    assert not await store.start_sending(first, clock())  # under way already
    sending = await store.list_deliveries("sending", 10)
    assert [d["id"] for d in sending] == [first.id]
    assert await store.claim("slack", 10, clock(), 60) == []  # never claimed again

    assert (await store.take_over("slack", "alerts", clock())).released == 2  # 2nd and 3rd
    assert not await store.start_sending(second, clock())  # its claim is void
    [dead] = await store.list_deliveries("dead", 10)
    assert dead["id"] == first.id and dead["last_error"] == OUTCOME_UNKNOWN
    again = await store.claim("slack", 10, clock(), 60)
    assert [d.id for d in again] == [second.id, third.id]
    assert await store.start_sending(again[0], clock())
    await store.mark_sent(again[0].id, clock(), 200)
    assert [d["id"] for d in await store.list_deliveries("sent", 10)] == [second.id]


async def test_the_sweep_dead_letters_what_a_dead_sender_left_sending(
    store: WebhookStore, clock: FakeClock
) -> None:
    await accept(store, parsed(am_alert("HighCPU", "warning")), clock())
    [message] = await store.claim("slack", 10, clock(), 60)
    assert await store.start_sending(message, clock())
    assert (await store.sweep(clock(), 3600.0)).outcome_unknown == []  # its lease holds
    clock.advance(seconds=61)
    assert (await store.sweep(clock(), 3600.0)).outcome_unknown == [message.id]
    [dead] = await store.list_deliveries("dead", 10)
    assert (dead["id"], dead["attempts"]) == (message.id, 1)
    assert dead["last_error"] == OUTCOME_UNKNOWN
