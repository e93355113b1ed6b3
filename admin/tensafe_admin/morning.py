"""The checklist's checks: Part 1 to Step 9 (status, incidents, key numbers, support,
customers, pulse, capacity, the daily summary)."""

import sys
from typing import Any

import click
from rich.console import Group
from rich.text import Text

from tensafe_admin import render, timefmt
from tensafe_admin.base import (
    Run,
    checked,
    common,
    fail,
    main,
    not_understood,
    prometheus_verdict,
    start,
)
from tensafe_admin.client import AdminError
from tensafe_admin.render import STATE_ICON, STATUS_STYLE, TREND, banded, both, number
from tensafe_admin.timefmt import ago

# -- Part 1 ------------------------------------------------------------------------------------


@main.command()
@click.option("--quick", is_flag=True, help="Only the traffic light's five panels.")
@common
def status(quick: bool, **options: Any) -> None:
    """The traffic light: API uptime, error rate, P95, pods, GPU (Part 1, Step 1).

    Exit code: 0 green, 1 yellow, 2 red, 3 unknown (also when the service or Prometheus
    cannot be reached: never green on missing data).

    \b
    Example:
      tensafe-admin status --quick
    """
    try:
        run = start(**options)
        data = run.client.get("/api/v1/status")
        rendered = render.status_table(data, run.tz, quick)
        markdown = render.status_markdown(data, run.tz, quick)
        exit_code = int(data["exit_code"])
    except AdminError as exc:
        fail(f"{exc}: status unknown", 3)
    except (KeyError, TypeError) as exc:
        fail(f"{not_understood(exc)}: status unknown", 3)
    run.emit(data, rendered, markdown)
    prometheus = data["prometheus"]
    if prometheus.get("configured") and not prometheus.get("reachable"):
        click.echo(f"tensafe-admin: {prometheus.get('error')}: status unknown", err=True)
    elif not prometheus.get("configured"):
        prometheus_verdict(prometheus)
    sys.exit(exit_code)


# -- Step 2 ----------------------------------------------------------------------------------------


CHECK_LABEL = {
    "resolved_or_escalated": "Handled",
    "root_cause": "Cause",
    "customer_communication": "Told",
    "post_mortem": "PM",
}
"""Step 2's checklist per incident, as columns."""


@main.group()
def incidents() -> None:
    """PagerDuty incidents with the Step 2 checklist."""


@incidents.command("list")
@click.option(
    "--since",
    default="8 hours ago",
    show_default=True,
    help='"8 hours ago", 8h, 30m, 2d, or a time (in --tz unless it has a zone).',
)
@common
@checked
def incidents_list(since: str, **options: Any) -> None:
    """Incidents opened since SINCE and every open one, each with its checklist.

    \b
    Example:
      tensafe-admin incidents list --since "8 hours ago"
    """
    run = start(**options)
    data = run.client.get("/api/v1/incidents", since=timefmt.since(since, run.tz))
    rows = []
    for incident in data["incidents"]:
        checks = {c["key"]: STATE_ICON[c["state"]] for c in incident["checklist"]}
        rows.append(
            [
                incident["id"],
                incident["priority"],
                incident["status"],
                incident["title"],
                run.time(incident["created_at"]),
                *(checks.get(key, "") for key in CHECK_LABEL),
            ]
        )
    notes = [
        f"{data['opened_in_window']} opened since {run.time(data['since'])}; "
        f"{data['open_total']} open in all. Mark a step: tensafe-admin incidents mark ID STEP"
    ]
    columns = ["ID", "Priority", "Status", "Title", "Opened", *CHECK_LABEL.values()]
    run.table(data, "Incidents", columns, rows, notes)


@incidents.command("mark")
@click.argument("incident_id")
@click.argument("step", type=click.Choice(["root_cause", "customer_communication", "post_mortem"]))
@click.option("--by", required=True, help="Who did it.")
@click.option("--note", default="", help="What was done (e.g. the post-mortem's date).")
@common
@checked
def incidents_mark(incident_id: str, step: str, by: str, note: str, **options: Any) -> None:
    """Record a person's step of an incident's checklist.

    \b
    Example:
      tensafe-admin incidents mark PXJ3K2L root_cause --by ada --note "disk filled by logs"
    """
    run = start(**options)
    body = {"step": f"incident.{incident_id}.{step}", "by": by, "note": note}
    data = run.client.post("/api/v1/checklist/today/done", body)
    run.emit(data, f"Recorded {step} of {incident_id} by {by}.", None)


# -- Steps 3 and 9 ----------------------------------------------------------------------------


@main.group()
def metrics() -> None:
    """The key numbers (Step 3) and the daily summary (Step 9)."""


@metrics.command("morning-snapshot")
@common
@checked
def morning_snapshot(**options: Any) -> None:
    """Yesterday vs today with the "concern if" rules flagged (Step 3).

    \b
    Example:
      tensafe-admin metrics morning-snapshot
    """
    run = start(**options)
    data = run.client.get("/api/v1/metrics/morning-snapshot")
    rows = []
    for row in data["rows"]:
        concern = {
            True: banded("CONCERN", "critical"),
            False: banded("ok", "healthy"),
            None: banded("unknown", "unknown"),
        }[row["concern"]]
        change = "" if row["change_percent"] is None else f" ({row['change_percent']:+.1f}%)"
        rows.append(
            [
                row["label"],
                number(row["yesterday"], row["unit"]),
                number(row["today"], row["unit"]),
                TREND[row["trend"]] + change,
                row["concern_if"],
                concern,
            ]
        )
    source = {r["yesterday_source"] for r in data["rows"]} - {None}
    notes = [f"Yesterday from: {', '.join(sorted(source)) or 'nothing stored yet'}"]
    run.table(
        data,
        f"Key numbers, {data['day']}",
        ["Metric", "Yesterday", "Today", "Trend", "Concern if", ""],
        rows,
        notes,
    )
    prometheus_verdict(data["prometheus"])


def _summary_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    shown = []
    for row in rows:
        actual = number(row["actual"], row["unit"])
        if row["key"] == "support_resolved" and row.get("p1_p2_open") is not None:
            actual += f" ({row['p1_p2_solved']} P1/P2; {row['p1_p2_open']} P1/P2 open)"
        status_ = row["status"]
        shown.append(
            [
                row["label"],
                row["target_text"],
                actual,
                banded(status_.replace("_", " "), "")
                if status_ not in STATUS_STYLE
                else Text(status_.replace("_", " "), style=STATUS_STYLE[status_]),
            ]
        )
    return shown


@metrics.command("daily-summary")
@click.option(
    "--date",
    "day",
    default="today",
    show_default=True,
    help="today, yesterday or YYYY-MM-DD (a stored day).",
)
@click.option("--record", is_flag=True, help="Store today's record now (also done at 23:00 UTC).")
@click.option("--post", is_flag=True, help="With --record: post it to Slack (once a day).")
@common
@checked
def daily_summary(day: str, record: bool, post: bool, **options: Any) -> None:
    """The business and operational tables with targets and status (Step 9).

    \b
    Example:
      tensafe-admin metrics daily-summary --date today
      tensafe-admin metrics daily-summary --date 2026-11-26
    """
    run = start(**options)
    if record:
        if day != "today":
            raise AdminError("--record stores today only")
        run.client.post("/api/v1/daily/today", {"post": post})
    data = run.client.get(f"/api/v1/daily/{day}")
    summary = data["summary"]
    columns = ["Metric", "Target", "Actual", "Status"]
    business, md_business = both(
        f"Business, {data['day']}", columns, _summary_rows(summary["business"])
    )
    operational, md_operational = both(
        f"Operational, {data['day']}", columns, _summary_rows(summary["operational"])
    )
    recorded = (
        f"recorded {run.time(data['recorded_at'])}"
        if data["recorded_at"]
        else "live (not recorded yet)"
    )
    note = Text(f"{recorded}; {summary['window']}")
    run.emit(
        data,
        Group(business, operational, note),
        f"{md_business}\n{md_operational}\n{note.plain}\n",
    )
    if data["live"]:
        prometheus_verdict(summary["prometheus"])


# -- Step 4 ----------------------------------------------------------------------------------------


@main.group()
def support() -> None:
    """Zendesk: the support queue (Step 4)."""


def _ticket_rows(run: Run, tickets: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            f"#{t['id']}",
            t["priority"].upper(),
            t["status"],
            t["subject"],
            t["account_name"] or "-",
            ago(t["age_seconds"]),
            banded("BREACHING", "critical") if t["breaching"] else "",
        ]
        for t in tickets
    ]


@support.command("summary")
@common
@checked
def support_summary(**options: Any) -> None:
    """Tickets by priority with SLA targets, open P1/P2, unanswered > 24 h, patterns.

    \b
    Example:
      tensafe-admin support summary
    """
    run = start(**options)
    data = run.client.get("/api/v1/support/summary")
    rows = [
        [
            p["label"],
            p["sla"],
            p["action"],
            p["open"],
            p["breaching"],
            ago(p["oldest_unanswered_seconds"]),
        ]
        for p in data["priorities"]
    ]
    triage, md_triage = both(
        "Support queue",
        ["Priority", "SLA", "Action", "Open", "Breaching", "Oldest unanswered"],
        rows,
    )
    columns = ["Ticket", "Priority", "Status", "Subject", "Customer", "Age", ""]
    urgent, md_urgent = both(
        f"Open P1/P2 ({data['open_p1_p2_total']})", columns, _ticket_rows(run, data["open_p1_p2"])
    )
    waiting, md_waiting = both(
        f"Over 24 h without a response ({data['unanswered_over_24h_total']})",
        columns,
        _ticket_rows(run, data["unanswered_over_24h"]),
    )
    patterns = data["patterns"]
    pattern_rows = [["tag", t["tag"], t["count"]] for t in patterns["tags"]]
    pattern_rows += [["subject", s["pattern"], s["count"]] for s in patterns["subjects"]]
    repeated, md_repeated = both(
        f"Repeated in the last 24 h ({patterns['min_tickets']}+ tickets)",
        ["Kind", "Pattern", "Tickets"],
        pattern_rows,
    )
    answers = data["answers"]

    def yes_no(value: bool | None) -> str:
        return {True: "yes", False: "no", None: "unknown"}[value]

    summary = Text(
        f"Any P1/P2 open? {yes_no(answers['p1_p2_open'])}.  Any ticket > 24 h without "
        f"response? {yes_no(answers['unanswered_over_24h'])}.  Patterns? "
        f"{yes_no(answers['recurring_patterns'])}."
    )
    run.emit(
        data,
        Group(triage, urgent, waiting, repeated, summary),
        "\n".join([md_triage, md_urgent, md_waiting, md_repeated, summary.plain]),
    )


# -- Steps 5 and 6 -----------------------------------------------------------------------------


@main.group()
def customers() -> None:
    """Customer health (Steps 5 and 6)."""


def _money(value: float | None, currency: str | None) -> str:
    return "-" if value is None else f"{value:,.0f} {str(currency or 'usd').upper()}"


@customers.command("at-risk")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@common
@checked
def customers_at_risk(limit: int, **options: Any) -> None:
    """The at-risk table: health score < 40, lowest first (Step 5).

    \b
    Example:
      tensafe-admin customers at-risk --limit 20
    """
    run = start(**options)
    data = run.client.get("/api/v1/customers", band="at_risk", limit=limit)
    rows = [
        [
            c["name"],
            c["score"],
            run.time(c["last_active"]),
            _money(c["mrr"], data["currency"]),
            "; ".join(c["risk_indicators"]),
            c["suggested_action"],
        ]
        for c in data["customers"]
    ]
    bands = ", ".join(
        f"{band}: {b['customers']} ({_money(b['mrr'], data['currency'])})"
        for band, b in data["bands"].items()
    )
    run.table(
        data,
        f"At-risk customers ({data['total']})",
        ["Customer", "Health", "Last active", "MRR", "Risk indicators", "Action"],
        rows,
        [f"Bands: {bands}"],
    )


@customers.command("enterprise-status")
@common
@checked
def customers_enterprise(**options: Any) -> None:
    """The enterprise checklist per $5K+ MRR customer (Step 6).

    \b
    Example:
      tensafe-admin customers enterprise-status
    """
    run = start(**options)
    data = run.client.get("/api/v1/customers/enterprise")

    def check(value: bool | None) -> str:
        return {True: "✅", False: "❌", None: "❔"}[value]

    rows = []
    for c in data["customers"]:
        checks = c["checks"]
        rows.append(
            [
                c["name"],
                _money(c["mrr"], data["currency"]),
                c["score"],
                c["band"],
                check(checks["healthy"]),
                f"{check(checks['no_breaching_tickets'])} {c['open_tickets'] or 0} open",
                check(checks["uptime_sla"]),
                check(checks["maintenance_communicated"]),
            ]
        )
    uptime = data["uptime_24h"]
    notes = [
        f"Platform: uptime 24 h {number(uptime, 'percent')} (SLA {data['uptime_sla']}%), "
        f"{data['platform_open_incidents']} open incidents; "
        f"{len(data['upcoming_maintenance'])} maintenance windows in the next 7 days",
        "For people: " + "; ".join(data["people_checks"]),
    ]
    run.table(
        data,
        "Enterprise customers",
        [
            "Customer",
            "MRR",
            "Health",
            "Band",
            "Healthy",
            "Tickets",
            "Uptime SLA",
            "Maintenance told",
        ],
        rows,
        notes,
    )


# -- Steps 7 and 8 -----------------------------------------------------------------------------


@main.command()
@common
@checked
def pulse(**options: Any) -> None:
    """What changed since the morning: alerts, traffic for the hour, queue (Step 7).

    \b
    Example:
      tensafe-admin pulse
    """
    run = start(**options)
    data = run.client.get("/api/v1/pulse")
    rows = [
        [
            c["label"],
            c["morning_display"],
            c["now_display"],
            c["change_display"],
        ]
        for c in data["changes"]
    ]
    traffic = data["traffic"]
    share = traffic["share_of_peak_percent"]
    unusual = {True: "UNUSUAL", False: "normal", None: "unknown"}[traffic["unusual"]]
    rps = traffic["requests_per_second"]
    rate = "unknown requests/s" if rps is None else f"{number(rps)}/s"
    notes = [
        f"Since {run.time(data['since'])}: light {str(data['light_then'] or '-').upper()} -> "
        f"{data['light_now'].upper()}; {len(data['new_alerts'])} new alerts"
        + "".join(f"\n  - {a['alertname']} ({a['severity']})" for a in data["new_alerts"]),
        f"Traffic: {rate} = {'unknown' if share is None else f'{share:.0f}%'} of the 7-day "
        f"peak; expected {traffic['band']['expected']} at {traffic['band']['hours_utc']} UTC, "
        f"alert if {traffic['band']['alert_if']}: {unusual}",
        f"Queue depth: {number(data['queue']['depth'])} (limit {data['queue']['limit']})",
    ]
    notes += [
        f"Today: {e['kind']} {e['note']} ({run.time(e['start'])} - {run.time(e['end'])})"
        for e in data["events_today"]
    ]
    if not data["morning_recorded"]:
        notes.insert(0, "No morning numbers stored yet today (stored at 08:00 UTC).")
    run.table(data, "Since the morning", ["Metric", "Morning", "Now", "Change"], rows, notes)
    prometheus_verdict(data["prometheus"])


@main.command()
@common
@checked
def capacity(**options: Any) -> None:
    """CPU, memory, GPU and disk against the Step 8 thresholds, and the scaling decision.

    \b
    Example:
      tensafe-admin capacity
    """
    run = start(**options)
    data = run.client.get("/api/v1/capacity")
    rows = [
        [
            r["label"],
            r["display"],
            r["threshold_text"],
            {
                True: banded("OVER", "critical"),
                False: banded("ok", "healthy"),
                None: banded("unknown", "unknown"),
            }[r["over"]],
            r["action"] or "",
        ]
        for r in data["resources"]
    ]
    decision = data["decision"]
    target = decision["pods_target"]
    verdict = {
        "scale_up": f"SCALE UP to {target} pods (now {decision['pods_now']})",
        "scale_down": f"SCALE DOWN to {target} pods (now {decision['pods_now']})",
        "hold": f"No scaling needed ({decision['pods_now']} pods)",
        "unknown": "Unknown (no data)",
    }[decision["action"]]
    notes = [
        f"Decision: {verdict}",
        *[f"  because {r}" for r in decision["reasons"]],
        f"P95 latency {number(data['p95_latency_ms'], 'ms')}; rule: {decision['rule']}",
    ]
    notes += [
        f"Pre-scale before {run.time(e['start'])} ({e['kind']}: {e['note']}): alert on-call, "
        "prepare customer communication, test critical paths"
        for e in data["events_next_24h"]
    ]
    run.table(data, "Capacity", ["Resource", "Current", "Threshold", "", "Action"], rows, notes)
    prometheus_verdict(data["prometheus"])
