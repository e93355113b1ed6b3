"""The webhook's alerts, its outbox of deliveries, and maintenance windows."""

from typing import Any

import click

from tensafe_admin import timefmt
from tensafe_admin.base import Run, checked, common, main, start
from tensafe_admin.timefmt import ago

# -- the webhook's alerts and maintenance windows --------------------------------------------


@main.group()
def alerts() -> None:
    """Alerts the webhook received, with their respond-by times."""


@alerts.command("list")
@click.option("--state", type=click.Choice(["firing", "resolved", "stale"]))
@click.option("--severity", type=click.Choice(["critical", "warning", "info"]))
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@common
@checked
def alerts_list(state: str | None, severity: str | None, limit: int, **options: Any) -> None:
    """Alerts, newest first, with time left or overdue.

    \b
    Example:
      tensafe-admin alerts list --state firing
    """
    run = start(**options)
    data = run.client.get("/api/v1/alerts", state=state, severity=severity, limit=limit)
    rows = []
    for a in data["alerts"]:
        if a["acknowledged_at"]:
            left = f"acked by {a['acknowledged_by']}"
        elif a["overdue_seconds"] is not None:
            left = f"OVERDUE {ago(a['overdue_seconds'])}"
        else:
            left = ago(a["seconds_left"]) if a["seconds_left"] is not None else "-"
        rows.append(
            [
                a["id"],
                a["alertname"],
                a["severity"],
                a["state"],
                a["summary"],
                run.time(a["respond_by"]),
                left,
            ]
        )
    run.table(
        data, "Alerts", ["ID", "Alert", "Severity", "State", "Summary", "Respond by", "Left"], rows
    )


@alerts.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", required=True)
@click.option("--note", default="")
@common
@checked
def alerts_ack(alert_id: int, by: str, note: str, **options: Any) -> None:
    """Acknowledge an alert.

    \b
    Example:
      tensafe-admin alerts ack 42 --by ada --note "looking into it"
    """
    run = start(**options)
    data = run.client.post(f"/api/v1/alerts/{alert_id}/ack", {"by": by, "note": note})
    run.emit(
        data,
        f"Alert {alert_id} ({data['alertname']}) acknowledged by {by} at "
        f"{run.time(data['acknowledged_at'])}.",
        None,
    )


@main.group()
def deliveries() -> None:
    """The webhook's outbox: what it sends to Slack, PagerDuty and Zendesk, dead letters too."""


@deliveries.command("list")
@click.option("--state", type=click.Choice(["pending", "sending", "sent", "dead"]))
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@common
@checked
def deliveries_list(state: str | None, limit: int, **options: Any) -> None:
    """Deliveries, newest first, with their attempts and last error.

    \b
    Example:
      tensafe-admin deliveries list --state dead
    """
    run = start(**options)
    data = run.client.get("/api/v1/deliveries", state=state, limit=limit)
    rows = [
        [
            d["id"],
            d["alert_id"],
            d["target"],
            d["destination"],
            d["state"],
            d["attempts"],
            run.time(d["updated_at"]),
            d["last_status"] if d["last_status"] is not None else "-",
            d["last_error"] or "-",
        ]
        for d in data["deliveries"]
    ]
    columns = ["ID", "Alert", "Target", "Destination", "State", "Attempts", "Updated"]
    run.table(data, "Deliveries", [*columns, "Last status", "Last error"], rows)


@deliveries.command("retry")
@click.argument("delivery_id", type=int)
@common
@checked
def deliveries_retry(delivery_id: int, **options: Any) -> None:
    """Put a dead-lettered delivery back in the outbox, due now (once its cause is fixed).

    \b
    Example:
      tensafe-admin deliveries retry 12
    """
    run = start(**options)
    data = run.client.post(f"/api/v1/deliveries/{delivery_id}/retry")
    run.emit(
        data,
        f"Delivery {data['id']} queued again ({data['target']}:{data['destination']}).",
        None,
    )


@main.group()
def notifications() -> None:
    """Alertmanager notifications the webhook's ingest set aside as failed."""


LAST_ERROR_SHOWN = 80
"""Characters of a set-aside notification's error in a table (the API keeps up to 500)."""


def shortened(text: str, limit: int = LAST_ERROR_SHOWN) -> str:
    """`text` cut to `limit` characters, an ellipsis saying so."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@notifications.command("failed")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@common
@checked
def notifications_failed(limit: int, **options: Any) -> None:
    """Notifications set aside as failed, oldest first, with their last error (JSON: the body
    as received too).

    \b
    Example:
      tensafe-admin notifications failed
    """
    run = start(**options)
    data = run.client.get("/api/v1/notifications/failed", limit=limit)
    rows = [
        [n["id"], run.time(n["received_at"]), n["attempts"], shortened(n["last_error"] or "-")]
        for n in data["notifications"]
    ]
    columns = ["ID", "Received", "Attempts", "Last error"]
    run.table(data, "Failed notifications", columns, rows)


@notifications.command("retry")
@click.argument("notification_id", type=int)
@common
@checked
def notifications_retry(notification_id: int, **options: Any) -> None:
    """Put a failed notification back in line for ingesting (attempts from zero), once its
    cause is fixed.

    \b
    Example:
      tensafe-admin notifications retry 7
    """
    run = start(**options)
    data = run.client.post(f"/api/v1/notifications/{notification_id}/retry")
    run.emit(data, f"Notification {data['id']} queued again for ingesting.", None)


@main.group()
def maintenance() -> None:
    """Maintenance windows: matching pages become Slack notes meanwhile."""


def _window_rows(run: Run, windows: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            w["id"],
            run.time(w["start"]),
            run.time(w["end"]),
            ", ".join(w["matchers"]),
            w["reason"],
            w["by"],
        ]
        for w in windows
    ]


WINDOW_COLUMNS = ["ID", "Start", "End", "Matchers", "Reason", "By"]


@maintenance.command("start")
@click.option(
    "--matcher",
    "matchers",
    multiple=True,
    required=True,
    help="Alertmanager-style, e.g. --matcher 'service=\"api\"' (repeatable).",
)
@click.option("--reason", required=True)
@click.option("--duration", default="1h", show_default=True)
@click.option("--start", "begin", default="now", show_default=True)
@click.option("--by", default="tensafe-admin", show_default=True)
@common
@checked
def maintenance_start(
    matchers: tuple[str, ...], reason: str, duration: str, begin: str, by: str, **options: Any
) -> None:
    """Start (or schedule) a maintenance window.

    \b
    Example:
      tensafe-admin maintenance start --matcher 'service="database"' --duration 2h \\
        --reason "PostgreSQL 16 upgrade"
    """
    run = start(**options)
    starts = timefmt.moment(begin, run.tz)
    ends = starts + timefmt.duration(duration)
    body = {
        "start": starts.isoformat(),
        "end": ends.isoformat(),
        "matchers": list(matchers),
        "reason": reason,
        "by": by,
    }
    data = run.client.post("/api/v1/maintenance", body)
    run.table(data, "Maintenance window", WINDOW_COLUMNS, _window_rows(run, [data]))


@maintenance.command("list")
@click.option("--all", "include_past", is_flag=True, help="Past windows too.")
@common
@checked
def maintenance_list(include_past: bool, **options: Any) -> None:
    """Current and coming maintenance windows.

    \b
    Example:
      tensafe-admin maintenance list
    """
    run = start(**options)
    data = run.client.get("/api/v1/maintenance", all="true" if include_past else None)
    run.table(data, "Maintenance windows", WINDOW_COLUMNS, _window_rows(run, data["windows"]))


@maintenance.command("end")
@click.argument("window_id", type=int)
@common
@checked
def maintenance_end(window_id: int, **options: Any) -> None:
    """End a running maintenance window now.

    \b
    Example:
      tensafe-admin maintenance end 3
    """
    run = start(**options)
    data = run.client.post(f"/api/v1/maintenance/{window_id}/end")
    run.table(data, "Maintenance window ended", WINDOW_COLUMNS, _window_rows(run, [data]))
