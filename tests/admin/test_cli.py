"""tensafe-admin against the service on the demo world, with and without a real Prometheus:
each command's output carries the API's real values (JSON when piped, tables and Markdown
when asked), `status --quick` exits 0/1/2/3 with the light, and trouble is one line on stderr.

The CLI is a blocking HTTP client and the service runs on this test's event loop, so each
invocation runs in a worker thread (click's CliRunner, the real httpx client, a real socket).
"""

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from click.testing import CliRunner, Result
from tensafe_admin.alerting import shortened
from tensafe_admin.cli import main

from tensafe_ops.sandbox.server import DEMO_SLACK_WEBHOOKS, RunningWorld
from tests.operations.conftest import demo_client, demo_with_prometheus, get
from tests.operations.stack import Product, wait_for
from tests.webhook.am import am_alert, ingest, notification
from tests.webhook.test_ingest import refuse_alertname
from webhook import DISPATCHER_KEY, WEBHOOK_KEY
from webhook.outbox import Delivery


@dataclass
class Cli:
    url: str
    env: dict[str, str]

    async def __call__(self, *args: str) -> Result:
        runner = CliRunner()
        env = {
            "TENSAFE_ADMIN_URL": self.url,
            "COLUMNS": "200",
            "TENSAFE_ADMIN_TZ": "UTC",
            "TENSAFE_ADMIN_CONFIG": "/nonexistent/config.toml",
            **self.env,
        }
        return await asyncio.to_thread(runner.invoke, main, list(args), env=env)

    async def json(self, *args: str) -> Any:
        result = await self(*args)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return json.loads(result.stdout)


def cli_for(client: TestClient, **env: str) -> Cli:  # type: ignore[type-arg]
    return Cli(str(client.make_url("")).rstrip("/"), env)


async def test_status_quick_exits_with_the_light_and_says_why(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    product = Product(error_percent=0.5, gpu_percent=85.0)
    async with demo_with_prometheus(aiohttp_client, demo_world, tmp_path, product) as demo:
        client = demo.client
        cli = cli_for(client)
        result = await cli("status", "--quick", "-o", "table")
        assert result.exit_code == 1, result.stderr  # yellow
        out = result.stdout
        assert "Traffic light: YELLOW" in out
        assert "Error rate (1h) 0.500% is warning (0.1-1%)" in out
        assert "GPU utilization 85.0% is warning (80-90%)" in out
        row = next(line for line in out.splitlines() if "P95 latency" in line)
        assert "98 ms" in row and "healthy" in row  # 97.5 ms, shown rounded
        assert "Queue depth" not in out  # --quick: the traffic light's panels only
        assert "zendesk" in out and "webhook: 0 open alerts" in out
        piped = await cli("status", "--quick")
        assert piped.exit_code == 1
        assert json.loads(piped.stdout)["light"] == "yellow"  # JSON when piped
        markdown = await cli("status", "-o", "markdown")
        assert "**Traffic light: YELLOW**" in markdown.stdout
        assert "| Error rate (1h) | 0.500% | warning |" in markdown.stdout
        # Pulse shows each tile as status does (GPU to a tenth, not 85.000%).
        pulse = (await cli("pulse", "-o", "table")).stdout
        gpu = next(line for line in pulse.splitlines() if "GPU utilization" in line)
        assert " 85.0% " in gpu, pulse
        # Capacity: the product's resources against Step 8's thresholds, and the decision.
        capacity = (await cli("capacity", "-o", "table")).stdout
        for label, expected in (("CPU Avg", 50), ("Memory Avg", 60), ("GPU Util", 85)):
            shown = re.search(rf"{label}\s+([\d.]+)%", capacity)
            assert shown and float(shown[1]) == pytest.approx(expected, rel=0.05), capacity
        assert "Decision: No scaling needed (3 pods)" in capacity
        assert "because CPU " in capacity and "<= 70%, memory " in capacity

        product.pods_ready = 1
        await wait_for(demo.prometheus.url, 'sum(kube_pod_status_ready{condition="true"})', 1)
        result = await cli("status", "--quick", "-o", "table")
        assert result.exit_code == 2  # red
        assert "Active pods 1 is critical (< 2)" in result.stdout
        assert "Scale immediately" in result.stdout  # the action if critical

        await demo.prometheus.stop()
        result = await cli("status", "--quick", "-o", "table")
        assert result.exit_code == 3  # unknown, never green
        assert "Traffic light: UNKNOWN" in result.stdout
        assert "is unreachable" in result.stderr and "status unknown" in result.stderr
        capacity = await cli("capacity", "-o", "table")
        assert capacity.exit_code == 1  # other commands: one line, exit 1
        assert capacity.stderr.count("\n") == 1 and "operational numbers are unknown" in (
            capacity.stderr
        )
        assert "Decision: Unknown (no data)" in capacity.stdout


async def test_every_command_shows_the_services_real_values(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    client = await demo_client(aiohttp_client, demo_world, tmp_path)
    cli = cli_for(client)

    status = await cli("status", "--quick")
    assert status.exit_code == 3  # no Prometheus configured: unknown
    assert "no Prometheus configured" in status.stderr

    support = await get(client, "/api/v1/support/summary")
    shown = await cli.json("support", "summary")  # the API's JSON, untouched
    assert shown["priorities"] == support["priorities"]
    for key in ("open_p1_p2", "unanswered_over_24h"):
        assert [(t["id"], t["subject"]) for t in shown[key]] == [
            (t["id"], t["subject"]) for t in support[key]
        ]
    table = (await cli("support", "summary", "-o", "table")).stdout
    first = support["open_p1_p2"][0]
    assert f"#{first['id']}" in table and first["subject"] in table
    assert f"Open P1/P2 ({support['open_p1_p2_total']})" in table
    assert "P1 (Service Down)" in table and "Escalate immediately" in table
    assert "Any P1/P2 open? yes." in table
    assert "\nRepeated in the last 24 h (3+ tickets)\n" in table  # a title is never wrapped

    at_risk = await get(client, "/api/v1/customers?band=at_risk&limit=50")
    table = (await cli("customers", "at-risk", "-o", "table")).stdout
    worst = at_risk["customers"][0]
    line = next(row for row in table.splitlines() if worst["name"] in row)
    assert f" {worst['score']} " in line and worst["suggested_action"] in line
    assert f"At-risk customers ({at_risk['total']})" in table

    enterprise = await cli.json("customers", "enterprise-status")
    names = {c["name"] for c in enterprise["customers"]}
    table = (await cli("customers", "enterprise-status", "-o", "table")).stdout
    assert all(name in table for name in names) and "No pending security reviews" in table

    incidents = await cli.json("incidents", "list", "--since", "8 hours ago")
    since = datetime.fromisoformat(incidents["since"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - since) - timedelta(hours=8)) < timedelta(minutes=1)
    table = (await cli("incidents", "list", "--since", "8h", "-o", "table")).stdout
    for incident in incidents["incidents"]:
        assert incident["title"] in table

    snapshot = await cli.json("metrics", "morning-snapshot")
    dau = await get(client, "/api/v1/metrics/morning-snapshot")
    assert snapshot["rows"][0]["today"] == dau["rows"][0]["today"]
    table = (await cli("metrics", "morning-snapshot", "-o", "table")).stdout
    assert f"{dau['rows'][0]['today']:,.0f}" in table and "Down > 10%" in table

    # Pulse lists today's numbers even before the morning's are stored.
    pulse = await cli.json("pulse")
    assert [c["key"] for c in pulse["changes"][:5]] == [r["key"] for r in snapshot["rows"]]
    table = (await cli("pulse", "-o", "table")).stdout
    dau_line = next(line for line in table.splitlines() if "Active Users (DAU)" in line)
    assert f"{pulse['changes'][0]['now']:,.0f}" in dau_line
    if not pulse["morning_recorded"]:
        assert "not stored" in dau_line and "No morning numbers stored yet" in table
    assert "\nTraffic: unknown requests/s = unknown of the 7-day peak;" in table  # no Prometheus

    recorded = await cli("metrics", "daily-summary", "--record", "--post", "-o", "table")
    assert recorded.exit_code == 0, recorded.stderr
    assert "recorded 20" in recorded.stdout  # a time in the operator's zone
    assert "Churned Users" in recorded.stdout and "<= 0" in recorded.stdout
    oncall = DEMO_SLACK_WEBHOOKS["oncall"]
    for _ in range(100):
        if any(m.webhook == oncall for m in demo_world.slack.messages):
            break
        await asyncio.sleep(0.1)
    assert any("daily summary" in json.dumps(m.payload) for m in demo_world.slack.messages)

    # Events: add, list, mark communicated, see it in the handoff, remove.
    nothing = await cli("events", "list", "-o", "table")
    assert nothing.stdout == "Planned events: none\n"  # not an empty table
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=2, minute=0, second=0)
    added = await cli.json(
        "events",
        "add",
        "--kind",
        "maintenance",
        "--start",
        tomorrow.strftime("%Y-%m-%dT%H:%M"),
        "--duration",
        "2h",
        "--note",
        "PostgreSQL 16 upgrade",
    )
    assert added["start"] == tomorrow.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert added["end"] == (tomorrow + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    listed = await cli.json("events", "list", "--days", "3")
    assert [e["id"] for e in listed["events"]] == [added["id"]]
    handoff = await cli("oncall", "handoff", "--shift", "night", "-o", "markdown")
    ends = tomorrow + timedelta(hours=2)
    assert (
        f"maintenance: PostgreSQL 16 upgrade ({tomorrow:%Y-%m-%d} 02:00 UTC to "
        f"{ends:%Y-%m-%d} 04:00 UTC)" in handoff.stdout
    )
    assert "NOT communicated yet" in handoff.stdout
    assert (await cli.json("events", "communicated", str(added["id"])))["communicated"] is True
    posted = await cli("oncall", "handoff", "--post", "--by", "ada", "-o", "markdown")
    assert posted.exit_code == 0, posted.stderr
    assert "Posted to Slack oncall" in posted.stdout
    assert (await cli("events", "remove", str(added["id"]))).exit_code == 0
    gone = await cli("events", "remove", str(added["id"]))
    assert gone.exit_code == 1 and gone.stderr == (
        "tensafe-admin: tensafe-ops answered 404: no such event\n"
    )

    # An expected spike within 24 hours: capacity advises pre-scaling, in the operator's zone.
    soon = (datetime.now(UTC) + timedelta(hours=3)).replace(second=0, microsecond=0)
    spike = await cli.json(
        "events", "add", "--kind", "spike", "--start", soon.isoformat(), "--duration", "1h",
        "--note", "newsletter",
    )  # fmt: skip
    table = (await cli("capacity", "--tz", "Asia/Kolkata", "-o", "table")).stdout
    shown = soon.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%Y-%m-%d %H:%M IST")
    assert f"Pre-scale before {shown} (spike: newsletter): alert on-call" in table
    assert (await cli("events", "remove", str(spike["id"]))).exit_code == 0

    # The checklist: people tick their boxes; the filled template has no blank left.
    done = await cli(
        "checklist",
        "done",
        "morning.incidents_reviewed",
        "--by",
        "ada",
        "--note",
        "two overnight, both resolved",
    )
    assert done.exit_code == 0, done.stderr
    markdown = (await cli("checklist", "-o", "markdown")).stdout
    assert markdown.startswith(f"# TenSafe Daily Operations - {datetime.now(UTC).date()}")
    assert "___" not in markdown
    assert re.search(
        r"\n- \[x\] ✅ Overnight incidents reviewed — ada at \d{4}-\d\d-\d\d \d\d:\d\d UTC: "
        r"two overnight, both resolved\n",
        markdown,
    ), markdown
    assert re.search(
        r"\n- ada \(morning.incidents_reviewed, \d{4}-\d\d-\d\d \d\d:\d\d UTC\): two overnight",
        markdown,
    ), markdown
    assert "- [x] ✅ On-call handoff posted — ada at" in markdown
    assert "- [x] ✅ Daily metrics recorded" in markdown
    watch = sum(1 for c in enterprise["customers"] if c["band"] == "watch")
    at_risk_big = [c["name"] for c in enterprise["customers"] if c["band"] == "at_risk"]
    healthy_line = next(line for line in markdown.splitlines() if "Enterprise customers" in line)
    assert f"— {len(enterprise['customers'])} enterprise customers, " in healthy_line
    assert ("none at risk" in healthy_line) == (not at_risk_big)
    assert all(name in healthy_line for name in at_risk_big)
    assert (f"; {watch} to watch" in healthy_line) is (watch > 0)
    dau_today = snapshot["rows"][0]["today"]
    assert f"- DAU: {dau_today:,.0f}" in markdown
    bad = await cli("checklist", "done", "morning.status", "--by", "ada")
    assert bad.exit_code == 1 and "unknown step" in bad.stderr

    # Alerts and maintenance windows, through the webhook's own API.
    body = notification(am_alert("HighLatencyP95", severity="warning"))
    assert (await client.post("/api/v1/alerts", json=body)).status == 200
    await ingest(client.app)
    alerts = await cli.json("alerts", "list", "--state", "firing")
    alert = next(a for a in alerts["alerts"] if a["alertname"] == "HighLatencyP95")
    acked = await cli.json("alerts", "ack", str(alert["id"]), "--by", "ada")
    assert acked["acknowledged_by"] == "ada"
    table = (await cli("alerts", "list", "-o", "table")).stdout
    assert "acked by ada" in table
    window = await cli.json(
        "maintenance",
        "start",
        "--matcher",
        'service="database"',
        "--duration",
        "2h",
        "--reason",
        "PostgreSQL 16 upgrade",
    )
    assert window["matchers"] == ['service="database"']
    assert [w["id"] for w in (await cli.json("maintenance", "list"))["windows"]] == [window["id"]]
    ended = await cli.json("maintenance", "end", str(window["id"]))
    ended_at = datetime.fromisoformat(ended["end"].replace("Z", "+00:00"))
    assert ended_at <= datetime.now(UTC) < ended_at + timedelta(minutes=1)
    listed = await cli("maintenance", "list", "-o", "markdown")
    assert listed.stdout == "### Maintenance windows\n\nNone.\n\n"


async def dead_letter(client: TestClient) -> Delivery:  # type: ignore[type-arg]
    """A page's delivery, dead-lettered as the dispatcher does on a 404 (the test plays the
    dispatcher, so nothing sends it again behind the test's back)."""
    await client.app[DISPATCHER_KEY].stop()
    body = notification(am_alert("TenSafeAPIDown", severity="critical"))
    assert (await client.post("/api/v1/alerts", json=body)).status == 200
    await ingest(client.app)
    store = client.app[WEBHOOK_KEY].store
    pending = await store.list_deliveries("pending", 10)
    assert pending, "the alert was routed nowhere"
    now = datetime.now(UTC)
    [claimed, *_] = await store.claim(pending[0]["target"], 10, now, 60)
    await store.mark_dead(claimed.id, now, "404 channel_not_found", 404)
    return claimed


async def test_deliveries_list_shows_the_dead_letters_the_light_points_to(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    client = await demo_client(aiohttp_client, demo_world, tmp_path)
    claimed = await dead_letter(client)
    cli = cli_for(client)
    status = await cli("status", "--quick")
    hint = "1 webhook delivery dead-lettered (tensafe-admin deliveries list --state dead)"
    assert hint in json.loads(status.stdout)["reasons"], status.stdout

    dead = await cli.json("deliveries", "list", "--state", "dead")
    assert [(d["id"], d["state"], d["last_error"]) for d in dead["deliveries"]] == [
        (claimed.id, "dead", "404 channel_not_found")
    ]
    table = await cli("deliveries", "list", "-o", "table")
    assert table.exit_code == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "channel_not_found" in line)
    assert str(claimed.id) in row and "dead" in row and "404" in row
    waiting = await cli.json("deliveries", "list", "--state", "pending")
    assert claimed.id not in [d["id"] for d in waiting["deliveries"]]
    bad = await cli("deliveries", "list", "--state", "lost")
    assert bad.exit_code == 2 and "'lost' is not one of" in bad.stderr


async def test_deliveries_retry_puts_a_dead_letter_back_in_line_once(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    client = await demo_client(aiohttp_client, demo_world, tmp_path)
    claimed = await dead_letter(client)
    cli = cli_for(client)
    [dead] = (await cli.json("deliveries", "list", "--state", "dead"))["deliveries"]
    where = f"{dead['target']}:{dead['destination']}"

    retried = await cli("deliveries", "retry", str(claimed.id), "-o", "table")
    assert retried.exit_code == 0, retried.stderr
    assert retried.stdout == f"Delivery {claimed.id} queued again ({where}).\n"
    waiting = await cli.json("deliveries", "list", "--state", "pending")
    assert claimed.id in [d["id"] for d in waiting["deliveries"]]
    assert (await cli.json("deliveries", "list", "--state", "dead"))["deliveries"] == []

    again = await cli("deliveries", "retry", str(claimed.id))
    assert (again.exit_code, again.stdout, again.stderr) == (
        1,
        "",
        f"tensafe-admin: tensafe-ops answered 409: delivery {claimed.id} is pending, "
        "only dead deliveries can be retried\n",
    )
    unknown = await cli("deliveries", "retry", "999999")
    assert (unknown.exit_code, unknown.stderr) == (
        1,
        "tensafe-admin: tensafe-ops answered 404: no delivery 999999\n",
    )


async def test_notifications_the_ingest_set_aside_are_listed_and_retried(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    client = await demo_client(
        aiohttp_client, demo_world, tmp_path, webhook={"ingest": {"max_attempts": 1}}
    )
    engine = client.app[WEBHOOK_KEY].store.engine
    await refuse_alertname(engine, "Poison")
    response = await client.post("/api/v1/alerts", json=notification(am_alert("Poison")))
    journal_id = (await response.json())["id"]
    cli = cli_for(client)
    async with asyncio.timeout(10):  # the background ingester's one attempt: set aside
        while True:
            failed = await cli.json("notifications", "failed")
            if failed["notifications"]:
                break
            await asyncio.sleep(0.05)
    [entry] = failed["notifications"]
    assert (entry["id"], entry["attempts"]) == (journal_id, 1)
    assert "refused" in entry["last_error"] and '"Poison"' in entry["body"]  # JSON: all of it
    table = await cli("notifications", "failed", "-o", "table")
    assert table.exit_code == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "refused" in line)
    received = f"{entry['received_at'][:10]} {entry['received_at'][11:16]} UTC"
    assert re.search(rf"^\W*{journal_id}\W+{received}\W+1\W+\w*Error: refused\b", row), row
    assert "Poison" not in table.stdout  # the body stays out of the table

    async with engine.begin() as conn:  # the cause is fixed
        await conn.exec_driver_sql("DROP TRIGGER refuse")
    retried = await cli("notifications", "retry", str(journal_id), "-o", "table")
    assert retried.exit_code == 0, retried.stderr
    assert retried.stdout == f"Notification {journal_id} queued again for ingesting.\n"
    again = await cli("notifications", "retry", str(journal_id))
    assert (again.exit_code, again.stderr) == (
        1,
        "tensafe-admin: tensafe-ops answered 404: no failed notification with that id\n",
    )
    await ingest(client.app)
    alerts = await cli.json("alerts", "list")
    assert [a["alertname"] for a in alerts["alerts"]] == ["Poison"]
    empty = await cli("notifications", "failed", "-o", "markdown")
    assert empty.stdout == "### Failed notifications\n\nNone.\n\n"


def test_a_long_error_is_shortened_in_the_table_only() -> None:
    error = "IntegrityError: " + "x" * 200
    assert shortened(error) == error[:79] + "…" and len(shortened(error)) == 80
    assert shortened("IntegrityError: refused") == "IntegrityError: refused"


async def test_unreachable_service_and_bad_input_are_one_clear_line(tmp_path: Path) -> None:
    cli = Cli("http://127.0.0.1:9", {})
    result = await cli("status", "--quick")
    assert result.exit_code == 3
    assert result.stderr == (
        "tensafe-admin: cannot reach tensafe-ops at http://127.0.0.1:9 (ConnectError): "
        "status unknown\n"
    )
    result = await cli("support", "summary")
    assert result.exit_code == 1 and result.stderr.startswith("tensafe-admin: cannot reach")
    # Credentials in the URL (valid in --url and TENSAFE_ADMIN_URL) never reach the message.
    with_secret = Cli("http://alice:s3cret-pw@127.0.0.1:9/?token=s3cret-q", {})
    result = await with_secret("status", "--quick")
    assert result.exit_code == 3
    assert result.stderr == (
        "tensafe-admin: cannot reach tensafe-ops at http://127.0.0.1:9/ (ConnectError): "
        "status unknown\n"
    )
    result = await cli("incidents", "list", "--since", "last tuesday")
    assert result.exit_code == 2 and "cannot read 'last tuesday' as a time" in result.stderr
    result = await cli("status", "--tz", "Mars/Olympus")
    assert result.exit_code == 2 and "unknown time zone 'Mars/Olympus'" in result.stderr


async def test_daily_summary_reads_any_stored_day_and_400_days_are_kept(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    from operations import OPERATIONS_KEY

    client = await demo_client(aiohttp_client, demo_world, tmp_path)
    ops = client.app[OPERATIONS_KEY]
    cli = cli_for(client)
    night = datetime.now(UTC).replace(hour=23, minute=0, second=0, microsecond=0)
    anchor = night + timedelta(days=3)  # a day nobody touched yet; its nightly run prunes
    for age in (401, 400, 399):
        assert await ops.record_due(anchor - timedelta(days=age)) == ["morning", "record"]
        day = (anchor - timedelta(days=age)).date()
        await ops.store.add_mark(day, "end.tomorrow_prep", "ada", "", anchor)
    assert await ops.record_due(anchor) == ["morning", "record"]

    oldest, kept = (anchor - timedelta(days=401)).date(), (anchor - timedelta(days=400)).date()
    gone = await cli("metrics", "daily-summary", "--date", oldest.isoformat())
    assert gone.exit_code == 1
    assert gone.stderr == (
        f"tensafe-admin: tensafe-ops answered 404: no daily record for {oldest} (date)\n"
    )
    assert await ops.store.marks(oldest) == []
    stored = await ops.store.day(kept)
    assert stored is not None and stored.record is not None
    assert len(await ops.store.marks(kept)) == 1
    table = await cli("metrics", "daily-summary", "--date", kept.isoformat(), "-o", "table")
    assert table.exit_code == 0, table.stderr
    assert f"Business, {kept}" in table.stdout and f"Operational, {kept}" in table.stdout
    assert f"recorded {kept} 23:00 UTC" in table.stdout  # as stored, not live
    signups = stored.record["summary"]["business"][0]["actual"]
    line = next(row for row in table.stdout.splitlines() if "New Signups" in row)
    assert f" {signups:,.0f} " in line
    shown = await cli.json("metrics", "daily-summary", "--date", kept.isoformat())
    assert shown["live"] is False and shown["summary"] == stored.record["summary"]
    # Each nightly run posted its day's summary to the demo #oncall, through the outbox.
    title = f"TenSafe daily summary - {kept.isoformat()}"
    for _ in range(100):
        posted = [m for m in demo_world.slack.messages if title in json.dumps(m.payload)]
        if posted:
            break
        await asyncio.sleep(0.1)
    assert [m.webhook for m in posted] == [DEMO_SLACK_WEBHOOKS["oncall"]]


async def test_an_answer_of_another_versions_shape_is_one_line_not_a_traceback(
    aiohttp_client: Any,
) -> None:
    """A laptop's tensafe-admin may be newer than the service: a field it reads that the
    answer lacks is a one-line error, never a traceback."""

    async def older(request: web.Request) -> web.Response:
        return web.json_response({"taken_at": "2026-11-30T10:00:00Z", "changes": [{}]})

    app = web.Application()
    app.router.add_get("/api/v1/pulse", older)
    app.router.add_get("/api/v1/status", older)
    cli = cli_for(await aiohttp_client(app))
    pulse = await cli("pulse", "-o", "table")
    assert pulse.exit_code == 1 and isinstance(pulse.exception, SystemExit)  # not a KeyError
    assert pulse.stderr.startswith("tensafe-admin: tensafe-ops answered in a form this")
    assert "update the one that is behind" in pulse.stderr and pulse.stderr.count("\n") == 1
    status = await cli("status", "--quick", "-o", "table")
    assert status.exit_code == 3 and status.stderr.endswith("behind: status unknown\n")


async def test_credentials_and_prometheus_url_errors_say_what_to_change(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """Against a configured service (API token, no client-named Prometheus): a missing token
    and a PROMETHEUS_URL the service refuses are one line saying which setting to change."""
    from tensafe_ops.app import make_app
    from tensafe_ops.settings import parse_settings
    from tests.webhook.am import API_TOKEN, webhook_settings

    settings = webhook_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    settings["operator"] = {"enabled": True}
    client = await aiohttp_client(make_app(parse_settings(settings)))
    anonymous = await cli_for(client)("events", "list")
    assert anonymous.exit_code == 1
    assert anonymous.stderr.startswith("tensafe-admin: tensafe-ops answered 401")
    assert anonymous.stderr.endswith("(set TENSAFE_ADMIN_TOKEN or --token)\n")
    named = cli_for(client, TENSAFE_ADMIN_TOKEN=API_TOKEN, PROMETHEUS_URL="http://127.0.0.1:9090")
    refused = await named("capacity")
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1
    assert "operator.prometheus_override is off" in refused.stderr
    assert refused.stderr.endswith(
        "(--prometheus-url or PROMETHEUS_URL: unset it to use the service's own)\n"
    )
    status = await named("status", "--quick")
    assert status.exit_code == 3 and "PROMETHEUS_URL" in status.stderr
    assert (await cli_for(client, TENSAFE_ADMIN_TOKEN=API_TOKEN)("events", "list")).exit_code == 0
