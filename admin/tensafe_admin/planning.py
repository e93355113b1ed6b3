"""Planning and handing over: Step 10's calendar, Step 11's handoff, Part 7's checklist."""

from datetime import timedelta
from typing import Any

import click
from rich.text import Text

from tensafe_admin import timefmt
from tensafe_admin.base import Run, checked, common, fail, main, start
from tensafe_admin.client import AdminError
from tensafe_admin.render import STATE_ICON, both

# -- Step 10 ---------------------------------------------------------------------------------------


@main.group()
def events() -> None:
    """Tomorrow's calendar: maintenance, demos, campaigns, expected spikes (Step 10)."""


KINDS = ("maintenance", "demo", "onboarding", "campaign", "spike", "other")


def _event_rows(run: Run, items: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            e["id"],
            e["kind"],
            run.time(e["start"]),
            run.time(e["end"]),
            e["note"],
            "yes" if e["communicated"] else "no",
            e["by"],
        ]
        for e in items
    ]


EVENT_COLUMNS = ["ID", "Kind", "Start", "End", "Note", "Communicated", "By"]


@events.command("add")
@click.option("--start", required=True, help="now, +2h, or 2026-11-28T09:00 (in --tz).")
@click.option("--end", help="A time, like --start.")
@click.option("--duration", help="Instead of --end: 30m, 2h, 1d.")
@click.option("--kind", type=click.Choice(KINDS), required=True)
@click.option("--note", required=True)
@click.option("--communicated", is_flag=True, help="Customers have been told.")
@click.option("--by", default="tensafe-admin", show_default=True)
@common
@checked
def events_add(
    start: str,
    end: str | None,
    duration: str | None,
    kind: str,
    note: str,
    communicated: bool,
    by: str,
    **options: Any,
) -> None:
    """Add a planned event.

    \b
    Example:
      tensafe-admin events add --kind maintenance --start 2026-11-28T02:00 --duration 2h \\
        --note "PostgreSQL 16 upgrade" --communicated
    """
    run = start_run(options)
    begins = timefmt.moment(start, run.tz)
    if (end is None) == (duration is None):
        raise ValueError("give --end or --duration")
    ends = timefmt.moment(end, run.tz) if end else begins + timefmt.duration(duration or "")
    body = {
        "start": begins.isoformat(),
        "end": ends.isoformat(),
        "kind": kind,
        "note": note,
        "communicated": communicated,
        "by": by,
    }
    data = run.client.post("/api/v1/events", body)
    run.table(data, "Event added", EVENT_COLUMNS, _event_rows(run, [data]))


def start_run(options: dict[str, Any]) -> Run:
    return start(**{k: options.get(k) for k in ("output", "tz", "url", "token", "prometheus_url")})


@events.command("list")
@click.option(
    "--days", type=click.IntRange(1, 400), default=7, show_default=True, help="How far ahead."
)
@common
@checked
def events_list(days: int, **options: Any) -> None:
    """Planned events from now on.

    \b
    Example:
      tensafe-admin events list --days 2
    """
    run = start(**options)
    until = (timefmt.moment("now", run.tz) + timedelta(days=days)).isoformat()
    data = run.client.get("/api/v1/events", to=until)
    run.table(data, "Planned events", EVENT_COLUMNS, _event_rows(run, data["events"]))


@events.command("remove")
@click.argument("event_id", type=int)
@common
@checked
def events_remove(event_id: int, **options: Any) -> None:
    """Remove a planned event.

    \b
    Example:
      tensafe-admin events remove 3
    """
    run = start(**options)
    data = run.client.request("DELETE", f"/api/v1/events/{event_id}")
    run.emit(data, f"Event {event_id} removed.", f"Event {event_id} removed.")


@events.command("communicated")
@click.argument("event_id", type=int)
@common
@checked
def events_communicated(event_id: int, **options: Any) -> None:
    """Mark a planned event as communicated to customers.

    \b
    Example:
      tensafe-admin events communicated 3
    """
    run = start(**options)
    data = run.client.request("PATCH", f"/api/v1/events/{event_id}", json={"communicated": True})
    run.table(data, "Event", EVENT_COLUMNS, _event_rows(run, [data]))


# -- Step 11 ----------------------------------------------------------------------------------


@main.group()
def oncall() -> None:
    """The on-call handoff (Step 11)."""


@oncall.command("handoff")
@click.option("--shift", type=click.Choice(["night", "day"]), default="night", show_default=True)
@click.option("--post", is_flag=True, help="Post it to the configured Slack destination.")
@click.option("--by", default="tensafe-admin", show_default=True, help="Who posts it.")
@common
@checked
def oncall_handoff(shift: str, post: bool, by: str, **options: Any) -> None:
    """The handoff message for Slack #oncall.

    \b
    Example:
      tensafe-admin oncall handoff --shift night --post
    """
    run = start(**options)
    if post:
        data = run.client.post("/api/v1/oncall/handoff", {"shift": shift, "by": by})
    else:
        data = run.client.get("/api/v1/oncall/handoff", shift=shift)
    text = data["markdown"]
    if post:
        text += f"\nPosted to Slack {data['destination']} (delivery {data['delivery_id']}).\n"
    run.emit(data, Text(text), text)


# -- Part 7 -----------------------------------------------------------------------------------


@main.group(invoke_without_command=True)
@click.option(
    "--date", "day", default="today", show_default=True, help="today, yesterday or YYYY-MM-DD."
)
@common
@click.pass_context
def checklist(context: click.Context, /, day: str, **options: Any) -> None:
    """The day's checklist (Part 7), every blank filled: the data ticks or crosses its boxes,
    people tick theirs with `checklist done STEP`.

    \b
    Example:
      tensafe-admin checklist -o markdown > today.md
      tensafe-admin checklist done morning.incidents_reviewed --by ada --note "2, both fine"
    """
    if context.invoked_subcommand is not None:
        return
    try:
        run = start(**options)
        data = run.client.get(f"/api/v1/checklist/{day}")
    except AdminError as exc:
        fail(str(exc), exc.exit_code)
    rows = []
    for section in data["sections"]:
        for index, item in enumerate(section["items"]):
            rows.append(
                [
                    f"{section['title']} {STATE_ICON[section['state']]}" if index == 0 else "",
                    STATE_ICON[item["state"]],
                    item["text"],
                    item["answered_by"],
                    item["detail"],
                ]
            )
    metrics_ = "; ".join(f"{m['label']}: {m['display']}" for m in data["key_metrics"].values())
    progress = data["progress"]
    notes = [
        f"Key metrics: {metrics_}",
        f"{progress['done']} done, {progress['failed']} failed, {progress['open']} open, "
        f"{progress['unknown']} unknown of {progress['total']}",
    ]
    notes += [f"Note: {n}" for n in data["notes"]]
    rendered, _ = both(
        f"TenSafe Daily Operations - {data['day']}",
        ["Check", "", "Item", "By", "Detail"],
        rows,
        notes,
    )
    run.emit(data, rendered, data["markdown"])


@checklist.command("done")
@click.argument("step")
@click.option("--by", required=True, help="Who did it.")
@click.option("--note", default="", help="e.g. --note 'scaled to 7 pods'.")
@click.option("--date", "day", default="today", show_default=True)
@common
@checked
def checklist_done(step: str, by: str, note: str, day: str, **options: Any) -> None:
    """Record that STEP was done (morning.incidents_reviewed, afternoon.scaling,
    end.tomorrow_prep, end.handoff_posted, enterprise.security_reviews).

    \b
    Example:
      tensafe-admin checklist done end.tomorrow_prep --by ada
    """
    run = start(**options)
    data = run.client.post(f"/api/v1/checklist/{day}/done", {"step": step, "by": by, "note": note})
    run.emit(data, f"{step} done by {by} at {run.time(data['at'])}.", None)
