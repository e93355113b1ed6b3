"""What each command shows: rich tables on a terminal and Markdown for pasting (JSON is the
API's own answer, untouched). Every function takes the API's JSON and the operator's zone."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import tzinfo
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tensafe_admin.timefmt import ago, local

BAND_STYLE = {
    "healthy": "green",
    "warning": "yellow",
    "critical": "bold red",
    "unknown": "magenta",
    "info": "dim",
}
LIGHT_STYLE = {
    "green": "bold green",
    "yellow": "bold yellow",
    "red": "bold red",
    "unknown": "bold magenta",
}
STATE_ICON = {"done": "✅", "failed": "❌", "open": "⬜", "unknown": "❔"}
STATUS_STYLE = {"met": "green", "missed": "red", "unknown": "magenta", "no_target": "dim"}
TREND = {"up": "↑", "down": "↓", "flat": "→", "unknown": "?"}


WRAPPING = {
    "Title",
    "Subject",
    "Item",
    "Detail",
    "Risk indicators",
    "Action",
    "Note",
    "Reason",
    "Summary",
    "Customer",
    "Action if critical",
    "Healthy / Warning / Critical",
    "Pattern",
}
"""Columns of free text; the others (times, numbers, states) are never wrapped."""


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> RenderableType:
    """The title on a line of its own: a table's own title wraps at the table's width, which
    splits "Repeated in the last 24 h (3+ tickets)" over a narrow table."""
    result = Table(box=box.SIMPLE_HEAVY)
    for column in columns:
        result.add_column(column, no_wrap=column not in WRAPPING)
    for row in rows:
        result.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    return Group(Text(title, style="bold"), result)


def md_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value.plain if isinstance(value, Text) else value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def number(value: float | None, unit: str = "count") -> str:
    if value is None:
        return "unknown"
    if unit == "percent":
        return f"{value:.3f}%"
    if unit == "ms":
        return f"{value:.0f} ms"
    if len(unit) == 3 and unit.isupper():  # a currency
        return f"{value:+,.2f} {unit.upper()}"
    return f"{value:,.0f}"  # counts (an increase() over 24 h is fractional: round it)


def banded(text: str, band: str) -> Text:
    return Text(text, style=BAND_STYLE.get(band, ""))


# -- status ----------------------------------------------------------------------------------


def _tile_rows(status: Mapping[str, Any], quick: bool) -> list[list[Any]]:
    rows = []
    for tile in status["tiles"]:
        if quick and tile["panel"] != "traffic_light":
            continue
        action = tile["action"] if tile["band"] == "critical" else ""
        rows.append(
            [
                tile["label"],
                tile["display"],
                banded(tile["band"], tile["band"]),
                f"{tile['healthy'] or '-'} / {tile['warning'] or '-'} / {tile['critical'] or '-'}",
                action,
            ]
        )
    return rows


def _source_rows(status: Mapping[str, Any]) -> list[list[Any]]:
    return [
        [
            s["source"],
            banded("up" if s["up"] else "down", "healthy" if s["up"] else "critical"),
            ago(s["age_seconds"]) + (" (stale)" if s["stale"] else ""),
        ]
        for s in status["sources"]
    ]


def _webhook_line(status: Mapping[str, Any]) -> str:
    webhook = status["webhook"]
    if not webhook.get("enabled"):
        return "webhook: off"
    firing = sum((webhook.get("open_alerts") or {}).values())
    overdue = sum((webhook.get("overdue") or {}).values())
    dead = sum((webhook.get("dead_letters") or {}).values())
    return (
        f"webhook: {firing} open alerts, {overdue} past respond-by, {dead} dead letters, "
        f"{webhook.get('journal_pending', 0)} notifications waiting"
    )


def status_table(status: Mapping[str, Any], tz: tzinfo, quick: bool) -> RenderableType:
    light = status["light"]
    head = Text.assemble(
        ("Traffic light: ", "bold"),
        (light.upper(), LIGHT_STYLE[light]),
        f"   (taken {local(status['taken_at'], tz, seconds=True)})",
    )
    reasons = Text("\n".join(f"  • {r}" for r in status["reasons"]))
    columns = ["Panel", "Value", "Band", "Healthy / Warning / Critical", "Action if critical"]
    parts: list[RenderableType] = [
        head,
        reasons,
        table("Dashboard panels", columns, _tile_rows(status, quick)),
        table("tensafe-ops sources", ["Source", "State", "Last success"], _source_rows(status)),
        Text(_webhook_line(status)),
    ]
    if not quick and status["alerts"]:
        parts.append(
            table(
                "Open alerts",
                ["ID", "Alert", "Severity", "Respond by", "Left"],
                [
                    [
                        a["id"],
                        a["alertname"],
                        a["severity"],
                        local(a["respond_by"], tz),
                        ago(a["seconds_left"])
                        if a["seconds_left"] is not None
                        else f"OVERDUE {ago(a['overdue_seconds'])}",
                    ]
                    for a in status["alerts"]
                ],
            )
        )
    return Group(*parts)


def status_markdown(status: Mapping[str, Any], tz: tzinfo, quick: bool) -> str:
    lines = [
        f"**Traffic light: {status['light'].upper()}** "
        f"(taken {local(status['taken_at'], tz, seconds=True)})",
        "",
    ]
    lines += [f"- {reason}" for reason in status["reasons"]] + [""]
    columns = ["Panel", "Value", "Band", "Healthy / Warning / Critical", "Action if critical"]
    lines += [md_table(columns, _tile_rows(status, quick)), ""]
    lines += [md_table(["Source", "State", "Last success"], _source_rows(status)), ""]
    lines.append(_webhook_line(status))
    return "\n".join(lines) + "\n"


# -- generic --------------------------------------------------------------------------------------


def both(
    title: str, columns: Sequence[str], rows: list[list[Any]], notes: Sequence[str] = ()
) -> tuple[RenderableType, str]:
    """A table and its Markdown twin, with notes under them; no rows: the title says so."""
    if not rows:
        rendered: list[RenderableType] = [Text.assemble((title, "bold"), ": none")]
        markdown = f"### {title}\n\nNone.\n"
    else:
        rendered = [table(title, columns, rows)]
        markdown = f"### {title}\n\n{md_table(columns, rows)}\n"
    rendered += [Text(note) for note in notes]
    markdown += "".join(f"\n{note}\n" for note in notes)
    return Group(*rendered), markdown
