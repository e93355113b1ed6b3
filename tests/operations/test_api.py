"""The operator API against the demo world, with and without a real Prometheus: the values it
answers are the exporter's and Prometheus' own (checked against /metrics and against the
product stand-in's exact rates), the traffic light moves with them, and Prometheus down is
"unknown", never green."""

import asyncio
import contextlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from operations import OPERATIONS_KEY, rules
from operations.service import due_parts, summary_owed
from tensafe_ops.sandbox.server import DEMO_SLACK_WEBHOOKS, RunningWorld
from tests.operations.conftest import (
    demo_client,
    demo_with_prometheus,
    get,
    metric_value,
    metric_values,
)
from tests.operations.stack import Product, wait_for
from webhook import WEBHOOK_KEY


def tiles(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["key"]: t for t in status["tiles"]}


async def test_without_prometheus_business_numbers_are_the_exporters_and_light_is_unknown(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    client = await demo_client(aiohttp_client, demo_world, tmp_path)

    status = await get(client, "/api/v1/status")
    assert (status["light"], status["exit_code"]) == ("unknown", 3)
    assert status["reasons"][0] == (
        "operational numbers unknown: no Prometheus configured (operator.prometheus_url)"
    )
    assert status["prometheus"] == {
        "configured": False,
        "url": None,
        "reachable": False,
        "error": "no Prometheus configured (operator.prometheus_url)",
    }
    assert {s["source"] for s in status["sources"] if s["up"]} == {
        "zendesk",
        "pagerduty",
        "stripe",
        "usage",
        "health",
    }

    # Support: the same counts as the exporter's metrics.
    support = await get(client, "/api/v1/support/summary")
    open_tickets = await metric_values(client, "tensafe_zendesk_open_tickets")
    for row in support["priorities"]:
        expected = sum(v for k, v in open_tickets.items() if ("priority", row["priority"]) in k)
        assert row["open"] == expected
    assert [r["sla"] for r in support["priorities"]] == ["1 hour", "4 hours", "24 hours", "2 days"]
    assert support["open_p1_p2_total"] == sum(
        v for k, v in open_tickets.items() if dict(k)["priority"] in ("p1", "p2")
    )
    subjects = {t["subject"] for t in support["open_p1_p2"]}
    assert subjects and all(
        s.endswith(f"#{t['id']}")
        for s, t in zip(
            sorted(subjects), sorted(support["open_p1_p2"], key=lambda t: t["subject"]), strict=True
        )
    )
    assert all(t["priority"] in ("p1", "p2") for t in support["open_p1_p2"])
    long_waiting = await metric_values(client, "tensafe_zendesk_long_unanswered_tickets")
    assert support["unanswered_over_24h_total"] == next(iter(long_waiting.values()))

    # Customers: band counts and at-risk MRR as the health source exports them.
    at_risk = await get(client, "/api/v1/customers?band=at_risk")
    bands = await metric_values(client, "tensafe_health_customers")
    for band, totals in at_risk["bands"].items():
        assert totals["customers"] == bands[(("band", band),)]
    at_risk_mrr = await metric_value(client, "tensafe_health_at_risk_mrr")
    assert at_risk["bands"]["at_risk"]["mrr"] == pytest.approx(at_risk_mrr, abs=0.01)
    assert at_risk["total"] == len(at_risk["customers"]) > 0
    scores = [c["score"] for c in at_risk["customers"]]
    assert scores == sorted(scores) and all(s < 40 for s in scores)
    first = at_risk["customers"][0]
    assert first["risk_indicators"] and first["suggested_action"] != "No action needed"
    assert first["name"] != first["account"]  # the usage database's account name

    enterprise = await get(client, "/api/v1/customers/enterprise")
    count = await metric_value(client, "tensafe_stripe_enterprise_customers")
    assert len(enterprise["customers"]) == count
    assert all(c["mrr"] >= 5000 for c in enterprise["customers"])
    assert all(c["checks"]["uptime_sla"] is None for c in enterprise["customers"])  # no Prometheus

    # Incidents: open ones are listed whatever their age; titles come along.
    incidents = await get(client, "/api/v1/incidents?since=8h")
    open_incidents = await metric_values(client, "tensafe_pagerduty_open_incidents")
    assert incidents["open_total"] == sum(open_incidents.values())
    listed_open = [i for i in incidents["incidents"] if i["status"] != "resolved"]
    assert len(listed_open) == incidents["open_total"]
    assert all(i["title"] for i in incidents["incidents"])
    for incident in incidents["incidents"]:
        checks = {c["key"]: c for c in incident["checklist"]}
        expected = "done" if incident["status"] in ("resolved", "acknowledged") else "failed"
        assert checks["resolved_or_escalated"]["state"] == expected
        needed = incident["priority"] in ("P1", "P2")
        assert incident["post_mortem_needed"] is needed
        assert checks["post_mortem"]["state"] == ("open" if needed else "done")

    # Key numbers: today's business numbers are the usage source's; operational ones unknown.
    snapshot = await get(client, "/api/v1/metrics/morning-snapshot")
    rows = {r["key"]: r for r in snapshot["rows"]}
    dau = await metric_value(client, "tensafe_usage_daily_active_users")
    assert rows["dau"]["today"] == dau
    assert rows["error_count_24h"]["today"] is None
    assert rows["dau"]["yesterday"] is None and rows["dau"]["trend"] == "unknown"

    summary = (await get(client, "/api/v1/daily/today"))["summary"]
    business = {r["key"]: r for r in summary["business"]}
    signups = await metric_value(client, "tensafe_usage_signups_24h")
    assert business["signups"]["actual"] == signups
    churned = await metric_value(client, "tensafe_stripe_churned_customers_24h")
    assert business["churned"]["actual"] == churned
    assert business["churned"]["status"] == ("met" if churned == 0 else "missed")
    operational = {r["key"]: r for r in summary["operational"]}
    assert operational["uptime"]["status"] == "unknown"
    # Completed training jobs: the usage database's succeeded ones (its status for a finished
    # job), as the exporter counts them.
    jobs = await metric_values(client, "tensafe_usage_training_jobs_24h")
    succeeded = jobs[(("status", "succeeded"),)]
    assert succeeded > 0
    assert operational["training_jobs_completed"]["actual"] == succeeded

    capacity = await get(client, "/api/v1/capacity")
    assert capacity["decision"]["action"] == "unknown"

    checklist = await get(client, "/api/v1/checklist/today")
    assert "___" not in checklist["markdown"]
    assert "- Uptime: unknown (no Prometheus configured" in checklist["markdown"]


async def test_with_prometheus_values_bands_and_light_follow_the_product(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    product = Product(error_percent=0.5, gpu_percent=85.0, pods_ready=3)
    async with demo_with_prometheus(aiohttp_client, demo_world, tmp_path, product) as demo:
        client = demo.client
        status = await get(client, "/api/v1/status")
        by_key = tiles(status)
        assert by_key["error_rate_1h"]["value"] == pytest.approx(0.5, abs=1e-6)
        assert (by_key["error_rate_1h"]["display"], by_key["error_rate_1h"]["band"]) == (
            "0.500%",
            "warning",
        )
        assert by_key["p95_latency"]["value"] == pytest.approx(97.5, abs=1e-6)
        assert by_key["p95_latency"]["band"] == "healthy"
        assert (by_key["active_pods"]["value"], by_key["active_pods"]["band"]) == (3, "healthy")
        assert (by_key["gpu_utilisation"]["value"], by_key["gpu_utilisation"]["band"]) == (
            85,
            "warning",
        )
        assert by_key["uptime_24h"]["value"] == 100 and by_key["uptime_24h"]["band"] == "healthy"
        assert by_key["database_up"]["band"] == "healthy"
        assert by_key["redis_up"]["band"] == "info"  # not scraped here: "not monitored"
        assert by_key["cpu"]["value"] == pytest.approx(50, rel=0.05)
        assert by_key["memory"]["value"] == pytest.approx(60, abs=1e-6)
        assert by_key["disk"]["value"] == pytest.approx(45, abs=1e-6)
        assert (status["light"], status["exit_code"]) == ("yellow", 1)
        assert "Error rate (1h) 0.500% is warning (0.1-1%)" in status["reasons"]
        assert "GPU utilization 85.0% is warning (80-90%)" in status["reasons"]
        assert status["prometheus"]["reachable"] is True

        capacity = await get(client, "/api/v1/capacity")
        decision = capacity["decision"]
        assert (decision["action"], decision["pods_now"], decision["pods_target"]) == ("hold", 3, 3)
        resources = {r["key"]: r for r in capacity["resources"]}
        assert resources["gpu_utilisation"]["over"] is False  # 85 is not "> 85%"
        assert capacity["within_limits"] is True

        pulse = await get(client, "/api/v1/pulse")
        now = datetime.now(UTC)
        band = rules.traffic_band(now)
        assert pulse["traffic"]["band"]["hours_utc"] == band.hours
        share = pulse["traffic"]["share_of_peak_percent"]
        assert share == pytest.approx(100, abs=5)  # constant traffic: now is the peak
        assert pulse["traffic"]["unusual"] is band.unusual(share)
        assert pulse["queue"] == {"depth": 12, "limit": 100, "within": True}

        # Two pods fail readiness and the GPUs saturate: red.
        product.pods_ready, product.gpu_percent = 1, 95.0
        await wait_for(demo.prometheus.url, 'sum(kube_pod_status_ready{condition="true"})', 1)
        await wait_for(demo.prometheus.url, "avg(DCGM_FI_DEV_GPU_UTIL)", 95)
        status = await get(client, "/api/v1/status")
        assert (status["light"], status["exit_code"]) == ("red", 2)
        by_key = tiles(status)
        assert by_key["active_pods"]["band"] == "critical"
        assert by_key["active_pods"]["action"] == "Scale immediately"
        assert "Active pods 1 is critical (< 2)" in status["reasons"]
        assert "GPU utilization 95.0% is critical (> 90%)" in status["reasons"]

        await demo.prometheus.stop()
        status = await get(client, "/api/v1/status")
        assert (status["light"], status["exit_code"]) == ("unknown", 3)
        assert status["prometheus"]["reachable"] is False
        assert "is unreachable" in status["reasons"][0]
        assert all(t["value"] is None for t in status["tiles"])


async def test_green_when_every_light_tile_is_healthy(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    product = Product(error_percent=0.05, gpu_percent=50.0, pods_ready=4)
    async with demo_with_prometheus(aiohttp_client, demo_world, tmp_path, product) as demo:
        client = demo.client
        status = await get(client, "/api/v1/status")
        assert (status["light"], status["exit_code"]) == ("green", 0), status["reasons"]
        assert status["reasons"] == ["all systems operational"]
        assert tiles(status)["error_rate_1h"]["display"] == "0.050%"


async def test_daily_record_marks_checklist_and_slack_posts(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    product = Product(error_percent=0.5, error_percent_yesterday=0.25)
    async with demo_with_prometheus(aiohttp_client, demo_world, tmp_path, product) as demo:
        client = demo.client
        ops = client.app[OPERATIONS_KEY]
        today = datetime.now(UTC).date()

        # Yesterday's record, as the nightly run would have stored it: DAU was 20 % higher.
        dau = (await get(client, "/api/v1/metrics/morning-snapshot"))["rows"][0]["today"]
        yesterday = {"key_numbers": {"dau": dau * 1.25, "api_calls_24h": None}}
        await ops.store.save_record(
            today - timedelta(days=1), yesterday, datetime.now(UTC), replace=True
        )
        rows = {
            r["key"]: r for r in (await get(client, "/api/v1/metrics/morning-snapshot"))["rows"]
        }
        assert rows["dau"]["yesterday"] == dau * 1.25
        assert rows["dau"]["yesterday_source"] == "daily_record"
        assert (rows["dau"]["trend"], rows["dau"]["change_percent"]) == ("down", -20.0)
        assert rows["dau"]["concern"] is True  # down > 10 %
        # No record of yesterday's API calls: Prometheus is asked for yesterday instead, and
        # holds nothing that old here.
        assert rows["api_calls_24h"]["yesterday"] is None
        # Yesterday's errors from Prometheus (evaluated 24 h ago): 0.25 % of 1,000/s then,
        # 0.5 % today: up 100 %, a concern ("Up > 50%").
        errors = rows["error_count_24h"]
        assert errors["yesterday_source"] == "prometheus_24h_ago"
        assert errors["yesterday"] == pytest.approx(1000 * 0.0025 * 86400, rel=0.02)
        assert errors["today"] == pytest.approx(1000 * 0.005 * 86400, rel=0.02)
        assert (errors["trend"], errors["concern"]) == ("up", True)
        latency = rows["p95_latency_avg_ms"]
        assert latency["today"] == pytest.approx(97.5, abs=0.01)
        assert (latency["trend"], latency["concern"]) in (
            ("flat", False),
            ("up", False),
            ("down", False),
        )

        # People mark their steps; the data answers the rest.
        response = await client.post(
            "/api/v1/checklist/today/done",
            json={
                "step": "morning.incidents_reviewed",
                "by": "ada",
                "note": "2 overnight, both fine",
            },
        )
        assert response.status == 201, await response.text()
        bad = await client.post(
            "/api/v1/checklist/today/done", json={"step": "morning.status", "by": "x"}
        )
        assert bad.status == 400 and (await bad.json())["field"] == "step"

        recorded = await client.post("/api/v1/daily/today", json={"post": True})
        assert recorded.status == 201, await recorded.text()
        body = await recorded.json()
        assert body["posted_delivery_id"] is not None
        again = await client.post("/api/v1/daily/today", json={"post": True})
        assert (await again.json())["posted_delivery_id"] is None  # posted once a day

        checklist = await get(client, "/api/v1/checklist/today")
        items = {i["key"]: i for s in checklist["sections"] for i in s["items"]}
        reviewed = items["morning.incidents_reviewed"]
        assert reviewed["state"] == "done" and reviewed["detail"].startswith("ada at ")
        assert items["morning.error_rate"]["state"] == "failed"  # 0.5 % is not < 0.1 %
        assert items["morning.error_rate"]["detail"] == "0.500%"
        assert items["morning.p95_latency"]["state"] == "done"
        assert items["afternoon.cpu"]["state"] == "done"
        assert items["end.metrics_recorded"]["state"] == "done"
        assert not [i for i in items.values() if i["state"] == "unknown"], items
        markdown = checklist["markdown"]
        assert "___" not in markdown
        assert "- [x] ✅ Overnight incidents reviewed — ada at" in markdown
        assert "- [ ] ❌ Error rate < 0.1% — 0.500%" in markdown
        assert "- Uptime: 100.000%" in markdown
        assert "ada (morning.incidents_reviewed" in markdown  # the note is kept

        # The summary went to the demo #oncall through the webhook's outbox.
        oncall = DEMO_SLACK_WEBHOOKS["oncall"]
        for _ in range(100):
            posted = [m for m in demo_world.slack.messages if m.webhook == oncall]
            if posted:
                break
            await asyncio.sleep(0.1)
        assert len(posted) == 1
        text = json.dumps(posted[0].payload)
        assert f"TenSafe daily summary - {today.isoformat()}" in text

        # The handoff is posted the same way and ticks its own box.
        handoff = await client.post("/api/v1/oncall/handoff", json={"shift": "night", "by": "ada"})
        assert handoff.status == 201, await handoff.text()
        shown = await handoff.json()
        assert shown["markdown"].startswith(f"## On-Call Handoff - {today.isoformat()}")
        assert "### System Status: YELLOW" in shown["markdown"]
        assert shown["contacts"]["day"] and "unknown" not in shown["contacts"]["day"][0]
        for _ in range(100):
            if len([m for m in demo_world.slack.messages if m.webhook == oncall]) == 2:
                break
            await asyncio.sleep(0.1)
        assert "On-Call Handoff" in json.dumps(demo_world.slack.messages[-1].payload)
        checklist = await get(client, "/api/v1/checklist/today")
        items = {i["key"]: i for s in checklist["sections"] for i in s["items"]}
        assert items["end.handoff_posted"]["state"] == "done"

        # A stored day reads back as stored.
        past = await get(client, f"/api/v1/daily/{today.isoformat()}")
        assert past["live"] is True and past["recorded_at"] is not None
        await get(client, "/api/v1/daily/2020-01-01", status=404)
        await get(client, "/api/v1/checklist/2020-01-01", status=404)


async def test_recorder_stores_morning_and_night_once(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    client = await demo_client(aiohttp_client, demo_world, tmp_path)
    ops = client.app[OPERATIONS_KEY]
    day = datetime.now(UTC).date() + timedelta(days=3)  # a day nobody touched yet
    early = datetime(day.year, day.month, day.day, 7, 59, tzinfo=UTC)
    assert await ops.record_due(early) == []
    assert await ops.record_due(early + timedelta(minutes=1)) == ["morning"]
    assert await ops.record_due(early + timedelta(minutes=2)) == []
    night = datetime(day.year, day.month, day.day, 23, 0, tzinfo=UTC)
    assert await ops.record_due(night) == ["record"]
    assert await ops.record_due(night + timedelta(minutes=1)) == []
    stored = await ops.store.day(day)
    assert stored is not None and stored.morning is not None and stored.record is not None
    assert stored.posted_at == night.timestamp()
    assert stored.record["summary"]["day"] == day.isoformat()
    past = await get(client, f"/api/v1/daily/{day.isoformat()}")
    assert past["live"] is False
    assert past["key_metrics"]["dau"]["value"] == stored.record["key_numbers"]["dau"]


class SQLiteWriter:
    """Another writer on the state database: while it holds the write lock, the service's
    writes wait for it (SQLite's busy timeout) and commit as soon as it lets go, which may be
    after the store's timeout has already failed the call."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def lock(self) -> None:
        await asyncio.to_thread(self.db.execute, "BEGIN IMMEDIATE")

    async def release(self) -> None:
        await asyncio.to_thread(self.db.execute, "COMMIT")
        self.db.close()


@pytest.mark.parametrize("slow", ["post", "record"])
async def test_the_nightly_summary_is_posted_once_though_a_write_outlasts_the_store_timeout(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path, slow: str
) -> None:
    """The store is busy for a second during the nightly pass, its timeout is 0.3 s: writes
    time out and commit later. `post`: the record is stored in time, posting it waits (it
    used to claim the day first, then time out); `record`: the record itself commits late.
    That pass fails, yet one Slack summary goes out, and only one (it used to be none: the
    next pass found the day posted, or recorded and so not due)."""
    client = await demo_client(aiohttp_client, demo_world, tmp_path, store_timeout=0.3)
    ops = client.app[OPERATIONS_KEY]
    day = datetime.now(UTC).date() - timedelta(days=5)  # past: its summary is due to send now
    night = datetime(day.year, day.month, day.day, 23, 0, tzinfo=UTC)
    assert await ops.record_due(night - timedelta(hours=15)) == ["morning"]
    database = ops.store.engine.url.database
    assert database is not None
    writer = SQLiteWriter(database)
    if slow == "record":
        await writer.lock()
    else:
        stored_in_time = ops.store.save_record

        async def save_record_then_lock(*args: Any, **kwargs: Any) -> bool:
            saved = await stored_in_time(*args, **kwargs)
            ops.store.save_record = stored_in_time  # type: ignore[method-assign]
            await writer.lock()
            return saved

        ops.store.save_record = save_record_then_lock  # type: ignore[method-assign]

    nightly = asyncio.create_task(ops.record_due(night))
    await asyncio.sleep(1.0)
    await writer.release()
    with contextlib.suppress(TimeoutError):
        await nightly
    late = ops.store.pending | client.app[WEBHOOK_KEY].writes
    if late:  # the writes that outlasted the timeout commit
        await asyncio.wait(late)
    for minutes in (1, 2):  # the recorder's next passes
        await ops.record_due(night + timedelta(minutes=minutes))

    oncall = DEMO_SLACK_WEBHOOKS["oncall"]
    title = f"TenSafe daily summary - {day.isoformat()}"

    def summaries() -> list[Any]:
        return [
            m
            for m in demo_world.slack.messages
            if m.webhook == oncall and title in json.dumps(m.payload)
        ]

    for _ in range(50):
        if summaries():
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # a second copy would be sent meanwhile
    assert len(summaries()) == 1
    stored = await ops.store.day(day)
    assert stored is not None and stored.posted_at is not None


def test_due_parts_replaces_an_earlier_record_with_the_nightly_one() -> None:
    from operations.config import OperatorConfig
    from operations.store import DayRow

    cfg = OperatorConfig()
    day = datetime(2026, 11, 27, tzinfo=UTC)
    at = lambda h, m=0: day.replace(hour=h, minute=m)  # noqa: E731
    empty = DayRow("2026-11-27", None, None, None, None, None)
    assert due_parts(at(7, 59), cfg, None) == []
    assert due_parts(at(8), cfg, None) == ["morning"]
    assert due_parts(at(23), cfg, empty) == ["morning", "record"]
    afternoon = DayRow("2026-11-27", {}, at(8).timestamp(), {}, at(17).timestamp(), None)
    assert due_parts(at(22, 59), cfg, afternoon) == []
    assert due_parts(at(23), cfg, afternoon) == ["record"]
    nightly = DayRow("2026-11-27", {}, at(8).timestamp(), {}, at(23, 1).timestamp(), None)
    assert due_parts(at(23, 30), cfg, nightly) == []
    # A nightly record whose summary did not get out (the pass failed): owed, if posting.
    posting = OperatorConfig(summary_slack="oncall")
    assert summary_owed(at(23, 30), posting, nightly)
    assert not summary_owed(at(23, 30), cfg, nightly)
    assert not summary_owed(at(22, 59), posting, afternoon)  # the nightly record will post
    posted = DayRow(
        "2026-11-27", {}, at(8).timestamp(), {}, at(23, 1).timestamp(), at(23, 1).timestamp()
    )
    assert not summary_owed(at(23, 30), posting, posted)


async def test_events_calendar_and_read_only_credentials(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    from tensafe_ops.app import make_app
    from tensafe_ops.settings import parse_settings
    from tests.webhook.am import API, webhook_settings

    settings = webhook_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    settings["operator"] = {"enabled": True, "read_auth": {"bearer_token": "read-only-7f3"}}
    client = await aiohttp_client(make_app(parse_settings(settings)))
    read = {"Authorization": "Bearer read-only-7f3"}

    assert (await client.get("/api/v1/events")).status == 401
    assert (
        await client.get("/api/v1/events", headers={"Authorization": "Bearer nope"})
    ).status == 401
    assert (await client.get("/api/v1/events", headers=read)).status == 200
    # The same read-only credentials read the webhook's API, and may not write there either.
    assert (await client.get("/api/v1/alerts", headers=read)).status == 200
    window = {
        "start": "2030-01-01T00:00:00Z",
        "end": "2030-01-01T01:00:00Z",
        "matchers": ['alertname="X"'],
        "reason": "test",
    }
    assert (await client.post("/api/v1/maintenance", json=window, headers=read)).status == 403
    assert (await client.post("/api/v1/maintenance", json=window, headers=API)).status == 201
    start = (datetime.now(UTC) + timedelta(hours=30)).replace(microsecond=0)
    event = {
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
        "kind": "maintenance",
        "note": "PostgreSQL 16 upgrade",
    }
    refused = await client.post("/api/v1/events", json=event, headers=read)
    assert refused.status == 403
    added = await client.post("/api/v1/events", json=event, headers=API)
    assert added.status == 201, await added.text()
    created = await added.json()
    assert (created["kind"], created["communicated"]) == ("maintenance", False)
    assert created["start"] == start.isoformat().replace("+00:00", "Z")

    listed = await get(client, "/api/v1/events", headers=read)
    assert [e["id"] for e in listed["events"]] == [created["id"]]
    capacity = await get(client, "/api/v1/capacity", headers=read)
    assert capacity["events_next_24h"] == []  # starts in 30 hours
    enterprise = await get(client, "/api/v1/customers/enterprise", headers=read)
    assert enterprise["upcoming_maintenance"][0]["note"] == "PostgreSQL 16 upgrade"
    handoff = await get(client, "/api/v1/oncall/handoff", headers=read)
    tomorrow = handoff["tomorrow_events"]
    if start.date() == datetime.now(UTC).date() + timedelta(days=1):
        assert "NOT communicated yet" in tomorrow[0]

    patched = await client.patch(
        f"/api/v1/events/{created['id']}", json={"communicated": True}, headers=API
    )
    assert (await patched.json())["communicated"] is True
    wrong = {**event, "end": event["start"]}
    bad = await client.post("/api/v1/events", json=wrong, headers=API)
    assert (bad.status, (await bad.json())["field"]) == (400, "end")
    bad = await client.post("/api/v1/events", json={**event, "kind": "party"}, headers=API)
    assert (bad.status, (await bad.json())["field"]) == (400, "kind")
    removed = await client.delete(f"/api/v1/events/{created['id']}", headers=API)
    assert removed.status == 200
    assert (await client.delete(f"/api/v1/events/{created['id']}", headers=API)).status == 404
    # '²' passes str.isdigit() but not int(): no such event, not a 500.
    assert (await client.delete("/api/v1/events/%C2%B2", headers=API)).status == 404

    # Bad parameters are 400s naming the field.
    for path, field in (
        ("/api/v1/incidents?since=yesterday-ish", "since"),
        ("/api/v1/customers?band=happy", "band"),
        ("/api/v1/customers?limit=0", "limit"),
        ("/api/v1/customers?offset=%C2%B2", "offset"),  # a digit to isdigit(), not to int()
        ("/api/v1/daily/2026-13-45", "date"),
        ("/api/v1/oncall/handoff?shift=evening", "shift"),
    ):
        response = await client.get(path, headers=read)
        assert response.status == 400, path
        assert (await response.json())["field"] == field
    # A client may not point the service at another Prometheus unless configured to.
    response = await client.get(
        "/api/v1/status", headers={**read, "X-Prometheus-URL": "http://127.0.0.1:9090"}
    )
    assert response.status == 400
    assert "prometheus_override" in (await response.json())["error"]


async def test_recorder_waits_for_an_unreachable_prometheus_then_records_what_it_has(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    client = await demo_client(
        aiohttp_client, demo_world, tmp_path, prometheus_url="http://127.0.0.1:9"
    )
    ops = client.app[OPERATIONS_KEY]
    day = datetime.now(UTC).date() + timedelta(days=3)
    morning = datetime(day.year, day.month, day.day, 8, 0, tzinfo=UTC)
    assert await ops.record_due(morning) == []  # a morning of unknowns would spoil the day
    assert await ops.record_due(morning + timedelta(minutes=29)) == []
    assert await ops.record_due(morning + timedelta(minutes=30)) == ["morning"]
    stored = await ops.store.day(day)
    assert stored is not None and stored.morning is not None
    assert stored.morning["light"] == "unknown"


async def test_every_write_refuses_read_only_credentials(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """Each documented write of the management API (the operator's and the webhook's, but not
    the Alertmanager receiver, which has its own credentials) is a 403 with the read-only
    token, before it looks at the request; the same request with the write token is not."""
    from tensafe_ops.app import make_app
    from tensafe_ops.settings import parse_settings
    from tests.webhook.am import API, webhook_settings

    settings = webhook_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    settings["operator"] = {"enabled": True, "read_auth": {"bearer_token": "read-only-7f3"}}
    client = await aiohttp_client(make_app(parse_settings(settings)))
    read = {"Authorization": "Bearer read-only-7f3"}
    spec = await get(client, "/api/v1/openapi.json", headers=read)
    receivers = {("post", "/api/v1/alerts"), ("post", "/api/v1/pagerduty/webhook")}
    writes = [
        (method, path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method in ("post", "put", "patch", "delete")
        and path.startswith("/api/v1/")
        and (method, path) not in receivers
    ]
    assert len(writes) >= 12, writes
    for method, template in writes:
        path = template.replace("{id}", "1").replace("{date}", "today")
        refused = await client.request(method.upper(), path, json={}, headers=read)
        assert refused.status == 403, (method, path, await refused.text())
        assert (await refused.json())["error"] == "these credentials may only read"
        allowed = await client.request(method.upper(), path, json={}, headers=API)
        assert allowed.status not in (401, 403), (method, path)
