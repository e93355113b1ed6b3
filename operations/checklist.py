"""Part 7's daily template, filled: the boxes the data answers are ticked or crossed by the data,
the others by people (`POST /api/v1/checklist/{date}/done`); and Step 11's on-call handoff.

Both come as JSON and as Markdown (the handoff also as Slack mrkdwn), rendered here so the CLI,
the status pages and Slack show the same text.
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from operations import views
from operations.picture import Picture, day_start

State = Literal["done", "failed", "open", "unknown"]
ICON: dict[State, str] = {"done": "✅", "failed": "❌", "open": "⬜", "unknown": "❔"}

SECTIONS = (
    ("morning", "Morning Check (08:00)"),
    ("customer", "Customer Review (08:15)"),
    ("midday", "Mid-Day Check (10:00)"),
    ("afternoon", "Afternoon Check (14:00)"),
    ("end", "End of Day (17:00)"),
)
PEOPLE_STEPS = {
    "morning.incidents_reviewed": "Overnight incidents reviewed",
    "afternoon.scaling": "Scaling not needed / SCALED to ___",
    "end.tomorrow_prep": "Tomorrow prep complete",
    "end.handoff_posted": "On-call handoff posted",
    "enterprise.security_reviews": "No pending security reviews",
}
"""Steps people mark (`checklist done STEP`); incidents have their own (`incident.<id>.<key>`)."""
INCIDENT_STEPS = ("root_cause", "customer_communication", "post_mortem")
HANDOFF_TICKETS = 10
"""Open P1/P2 tickets listed by name in the handoff (the rest are counted)."""


def valid_step(step: str) -> bool:
    if step in PEOPLE_STEPS:
        return True
    parts = step.split(".")
    return (
        len(parts) == 3 and parts[0] == "incident" and bool(parts[1]) and parts[2] in INCIDENT_STEPS
    )


def _item(
    key: str,
    text: str,
    answered_by: Literal["data", "people"],
    state: State,
    detail: str,
    marks: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "key": key,
        "section": key.split(".", 1)[0],
        "text": text,
        "answered_by": answered_by,
        "state": state,
        "detail": detail,
        "marks": list(marks),
    }


def _data(key: str, text: str, ok: bool | None, detail: str) -> dict[str, Any]:
    state: State = "unknown" if ok is None else ("done" if ok else "failed")
    return _item(key, text, "data", state, detail)


def _people(key: str, text: str, p: Picture) -> dict[str, Any]:
    marks = p.marks_of(key)
    if marks:
        last = marks[-1]
        note = f": {last['note']}" if last["note"] else ""
        detail = f"{last['by']} at {views.short(last['at'])}{note}"
        return _item(key, text, "people", "done", detail, marks)
    return _item(key, text, "people", "open", f"to do: tensafe-admin checklist done {key}")


def _below(value: float | None, limit: float, shown: str) -> tuple[bool | None, str]:
    if value is None:
        return None, "no data (Prometheus)"
    return value < limit, shown


def _morning(p: Picture) -> list[dict[str, Any]]:
    """Answered from the morning snapshot when one was stored today, else from now."""
    morning = p.today.morning if p.today and p.today.morning else None
    if morning:
        light = str(morning.get("light"))
        value = (morning.get("tiles") or {}).get
        sources_up = bool(morning.get("sources_up"))
        when = "at the morning snapshot"
    else:
        board = views.status(p)
        light = board["light"]
        value = {t["key"]: t["value"] for t in board["tiles"]}.get
        sources_up = all(s["up"] for s in board["sources"])
        when = "now (no morning snapshot yet)"
    api_up = value("api_up")
    services = [("API", api_up), ("database", value("database_up")), ("Redis", value("redis_up"))]
    down = [name for name, v in services if v is not None and v < 1]
    responding: bool | None = None if api_up is None else (not down and sources_up)
    if api_up is None:
        detail = "no data (Prometheus)"
    elif down:
        detail = "down: " + ", ".join(down)
    else:
        detail = "API, database and Redis up" + (
            "" if sources_up else "; a tensafe-ops source is down"
        )
    error_rate, p95 = value("error_rate_1h"), value("p95_latency")
    return [
        _data(
            "morning.status",
            f"System status: {light.upper()}",
            None if light == "unknown" else light == "green",
            when,
        ),
        _data("morning.services_responding", "All services responding", responding, detail),
        _data(
            "morning.error_rate",
            "Error rate < 0.1%",
            *_below(error_rate, 0.1, views.display(error_rate, "percent", 3)),
        ),
        _data(
            "morning.p95_latency",
            "P95 latency < 100ms",
            *_below(p95, 100, views.display(p95, "ms")),
        ),
    ]


def _customer(p: Picture) -> list[dict[str, Any]]:
    support = views.support_summary(p)
    urgent = support["open_p1_p2_total"] if support["available"] else None
    people = views.customers(p, "at_risk", 10, 0)
    at_risk = people["total"] if people["available"] else None
    names = ", ".join(c["name"] for c in people["customers"][:5])
    big = views.enterprise(p)["customers"]
    sick = [c["name"] for c in big if c["band"] == "at_risk"]
    return [
        _data(
            "customer.no_p1_p2",
            "No P1/P2 tickets open",
            None if urgent is None else urgent == 0,
            "no Zendesk data" if urgent is None else f"{urgent} open",
        ),
        _data(
            "customer.at_risk",
            f"At-risk customers identified: {'unknown' if at_risk is None else at_risk}",
            None if at_risk is None else True,
            "no health scores yet" if at_risk is None else (names or "none"),
        ),
        _data(
            "customer.enterprise_healthy",
            "Enterprise customers healthy",
            None if not people["available"] else not sick,
            _enterprise_detail(big, sick),
        ),
    ]


def _enterprise_detail(big: list[dict[str, Any]], sick: list[str]) -> str:
    watch = sum(1 for c in big if c["band"] == "watch")
    verdict = f"at risk: {', '.join(sick)}" if sick else "none at risk"
    return f"{len(big)} enterprise customers, {verdict}" + (f"; {watch} to watch" if watch else "")


def _midday(p: Picture) -> list[dict[str, Any]]:
    pulse = views.pulse(p)
    flow = pulse["traffic"]
    share = flow["share_of_peak_percent"]
    new = pulse["new_alerts"]
    cap = views.capacity(p)
    over = [r["label"] for r in cap["resources"] if r["over"]]
    if cap["within_limits"] is None:
        resources = "no data (Prometheus)"
    elif over:
        resources = "over: " + ", ".join(over)
    else:
        resources = ", ".join(f"{r['label']} {r['display']}" for r in cap["resources"])
    return [
        _data(
            "midday.traffic_normal",
            "Traffic patterns normal",
            None if flow["unusual"] is None else not flow["unusual"],
            "no data (Prometheus)"
            if share is None
            else f"{share:.0f}% of the 7-day peak; expected {flow['band']['expected']} "
            f"at {flow['band']['hours_utc']} UTC",
        ),
        _data(
            "midday.no_new_alerts",
            "No new alerts",
            None if p.webhook is None else not new,
            "webhook off"
            if p.webhook is None
            else f"{len(new)} since {views.short(pulse['since'])}",
        ),
        _data("midday.resources", "Resources within limits", cap["within_limits"], resources),
    ]


def _afternoon_and_end(p: Picture) -> list[dict[str, Any]]:
    cpu, memory = p.value("cpu"), p.value("memory")
    decision = views.capacity(p)["decision"]
    recorded = p.today.recorded_at if p.today else None
    return [
        _data("afternoon.cpu", "CPU < 70%", *_below(cpu, 70, views.display(cpu, "percent"))),
        _data(
            "afternoon.memory",
            "Memory < 80%",
            *_below(memory, 80, views.display(memory, "percent")),
        ),
        _data(
            "afternoon.scaling",
            "Scaling not needed",
            None if decision["action"] == "unknown" else decision["action"] == "hold",
            "; ".join(decision["reasons"]),
        ),
        _data(
            "end.metrics_recorded",
            "Daily metrics recorded",
            True,
            f"recorded at {views.short(recorded)}",
        )
        if recorded is not None
        else _item(
            "end.metrics_recorded",
            "Daily metrics recorded",
            "data",
            "open",
            f"not yet (stored at {p.cfg.record_at:%H:%M} UTC, or now: "
            "tensafe-admin metrics daily-summary --record)",
        ),
    ]


def data_answers(p: Picture) -> dict[str, dict[str, Any]]:
    """The boxes the data answers, keyed by step (stored with the day's record)."""
    items = _morning(p) + _customer(p) + _midday(p) + _afternoon_and_end(p)
    return {item["key"]: item for item in items}


def _scaling(item: dict[str, Any], p: Picture) -> dict[str, Any]:
    """Needed scaling is done by people: `checklist done afternoon.scaling --note "7 pods"`."""
    if item["state"] != "failed":
        return item
    marks = p.marks_of("afternoon.scaling")
    if not marks:
        return {
            **item,
            "state": "open",
            "text": "Scaling needed",
            "detail": item["detail"] + " (mark it: tensafe-admin checklist done "
            "afternoon.scaling --note 'scaled to N pods')",
        }
    last = marks[-1]
    return {
        **item,
        "state": "done",
        "answered_by": "people",
        "marks": marks,
        "text": f"SCALED to {last['note'] or '(no note)'}",
        "detail": f"{last['by']} at {views.short(last['at'])}",
    }


def _handoff_posted(item: dict[str, Any] | None, p: Picture) -> dict[str, Any]:
    return _people("end.handoff_posted", "On-call handoff posted", p)


def checklist(
    p: Picture,
    answers: Mapping[str, Mapping[str, Any]] | None = None,
    numbers: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The template for `p`'s day: live data answers unless `answers` (a stored day's) are
    given; people's marks are always read live."""
    data = dict(answers) if answers is not None else data_answers(p)
    live = answers is None

    def answer(key: str) -> dict[str, Any]:
        found = data.get(key)
        if found is None:
            return _data(key, key, None, "not recorded that day")
        return {**found, "marks": []}

    order = {
        "morning": [
            answer("morning.status"),
            _people("morning.incidents_reviewed", "Overnight incidents reviewed", p),
            answer("morning.services_responding"),
            answer("morning.error_rate"),
            answer("morning.p95_latency"),
        ],
        "customer": [
            answer("customer.no_p1_p2"),
            answer("customer.at_risk"),
            answer("customer.enterprise_healthy"),
        ],
        "midday": [
            answer("midday.traffic_normal"),
            answer("midday.no_new_alerts"),
            answer("midday.resources"),
        ],
        "afternoon": [
            answer("afternoon.cpu"),
            answer("afternoon.memory"),
            _scaling(answer("afternoon.scaling"), p),
        ],
        "end": [
            answer("end.metrics_recorded"),
            _people("end.tomorrow_prep", "Tomorrow prep complete", p),
            _handoff_posted(None, p),
        ],
    }
    sections: list[dict[str, Any]] = []
    for key, title in SECTIONS:
        items = order[key]
        states = {i["state"] for i in items}
        verdict = "done" if states == {"done"} else ("failed" if "failed" in states else "open")
        sections.append({"key": key, "title": title, "state": verdict, "items": items})
    all_items: list[dict[str, Any]] = [i for s in sections for i in s["items"]]
    metrics = dict(numbers) if numbers is not None else key_metrics(p)
    day_marks = [m for m in p.marks if m["day"] == p.day.isoformat()]
    notes = [
        f"{m['by']} ({m['step']}, {views.short(m['at'])}): {m['note']}"
        for m in day_marks
        if m["note"]
    ]
    result = {
        "day": p.day.isoformat(),
        "taken_at": views.iso(p.now),
        "live": live,
        "sections": sections,
        "progress": {
            "done": sum(1 for i in all_items if i["state"] == "done"),
            "failed": sum(1 for i in all_items if i["state"] == "failed"),
            "open": sum(1 for i in all_items if i["state"] == "open"),
            "unknown": sum(1 for i in all_items if i["state"] == "unknown"),
            "total": len(all_items),
        },
        "key_metrics": metrics,
        "notes": notes,
        "people_steps": sorted(PEOPLE_STEPS),
    }
    result["markdown"] = checklist_markdown(result)
    return result


def key_metrics(p: Picture) -> dict[str, Any]:
    """Part 7's "Key Metrics Today", each with its display text (never a blank)."""
    usage, stripe = p.overview("usage"), p.overview("stripe")
    uptime = p.value("uptime_24h")
    change = stripe.get("mrr_change_today")
    currency = str(stripe.get("currency") or "usd").upper()

    def count(value: Any, source: str) -> str:
        return f"{value:,.0f}" if value is not None else f"unknown (no {source} data)"

    unknown_uptime = "unknown (" + (p.readings.error or "no data") + ")"
    return {
        "dau": {
            "label": "DAU",
            "value": usage.get("dau"),
            "display": count(usage.get("dau"), "usage"),
        },
        "api_calls": {
            "label": "API Calls",
            "value": usage.get("api_calls_24h"),
            "display": count(usage.get("api_calls_24h"), "usage"),
        },
        "uptime": {
            "label": "Uptime",
            "value": uptime,
            "display": unknown_uptime if uptime is None else f"{uptime:.3f}%",
        },
        "new_signups": {
            "label": "New Signups",
            "value": usage.get("signups_24h"),
            "display": count(usage.get("signups_24h"), "usage"),
        },
        "mrr_change": {
            "label": "MRR Change",
            "value": change,
            "display": "unknown (no Stripe data)"
            if change is None
            else f"{change:+,.2f} {currency}",
        },
    }


def checklist_markdown(result: Mapping[str, Any]) -> str:
    lines = [f"# TenSafe Daily Operations - {result['day']}", ""]
    for section in result["sections"]:
        lines.append(f"## {section['title']} {ICON[section['state']]}")
        for item in section["items"]:
            box = "x" if item["state"] == "done" else " "
            lines.append(f"- [{box}] {ICON[item['state']]} {item['text']} — {item['detail']}")
        lines.append("")
    lines.append("## Key Metrics Today")
    for metric in result["key_metrics"].values():
        lines.append(f"- {metric['label']}: {metric['display']}")
    lines += ["", "## Notes/Issues:"]
    lines += [f"- {note}" for note in result["notes"]] or ["- None recorded."]
    return "\n".join(lines) + "\n"


# -- Step 11: the on-call handoff ------------------------------------------------------------


def _on_call_at(p: Picture, at: datetime) -> list[str]:
    """Level-1 on-call per escalation policy at `at` ("unknown" for a policy whose shift then
    PagerDuty did not list)."""
    shifts = [s for s in p.overview("pagerduty").get("oncalls") or [] if s.get("level") == 1]
    names: dict[str, str] = {}
    for shift in shifts:
        start, end = views.parse_iso(shift.get("start")), views.parse_iso(shift.get("end"))
        if (start is None or start <= at) and (end is None or end > at):
            names[shift["escalation_policy"]] = shift["user"]
    policies = sorted({s["escalation_policy"] for s in shifts})
    return [f"{names.get(policy, 'unknown')} ({policy})" for policy in policies]


def handoff(p: Picture, shift: Literal["night", "day"]) -> dict[str, Any]:
    board = views.status(p)
    night = day_start(p.day) + timedelta(
        hours=p.cfg.night_shift_starts.hour, minutes=p.cfg.night_shift_starts.minute
    )
    if night <= p.now - timedelta(hours=12):
        night += timedelta(days=1)
    incoming_at = night if shift == "night" else night + timedelta(hours=12)
    open_issues = []
    for incident in p.overview("pagerduty").get("incidents") or []:
        if incident.get("status") in ("triggered", "acknowledged"):
            open_issues.append(
                f"PagerDuty #{incident.get('number')} {incident.get('title')} "
                f"({incident.get('priority')}, {incident.get('status')})"
            )
    for alert in p.firing:
        if alert.get("acknowledged_at") is None:
            open_issues.append(
                f"Alert {alert['alertname']} ({alert['severity']}), "
                f"respond by {alert['respond_by']}"
            )
    urgent = p.overview("zendesk").get("open_urgent") or []
    for ticket in urgent[:HANDOFF_TICKETS]:
        open_issues.append(
            f"Zendesk #{ticket['id']} {ticket.get('priority', '').upper()}: {ticket.get('subject')}"
        )
    more = int(p.overview("zendesk").get("open_urgent_total") or len(urgent)) - HANDOFF_TICKETS
    if more > 0:
        open_issues.append(f"...and {more} more open P1/P2 tickets (tensafe-admin support summary)")
    watch = [
        f"{t['label']} {t['display']} ({t['band']})"
        for t in board["tiles"]
        if t["band"] in ("warning", "critical")
    ]
    watch += [r for r in board["reasons"] if r.startswith("source ") or "dead-lettered" in r]
    watch += [
        f"Enterprise customer {c['name']} at risk: {', '.join(c['risk_indicators'])}"
        for c in views.enterprise(p)["customers"]
        if c["band"] == "at_risk"
    ]
    long_waiting = p.overview("zendesk").get("long_unanswered")
    if long_waiting:
        watch.append(f"{long_waiting} tickets waiting over 24 h for a first answer")
    decision = views.capacity(p)["decision"]
    if decision["action"] in ("scale_up", "scale_down"):
        watch.append(
            f"Capacity: {decision['action'].replace('_', ' ')} to {decision['pods_target']} pods "
            f"({'; '.join(decision['reasons'])})"
        )
    tomorrow = p.day + timedelta(days=1)
    start, end = day_start(tomorrow), day_start(tomorrow) + timedelta(days=1)
    events = [
        f"{e['kind']}: {e['note']} ({views.short(e['start'])} to {views.short(e['end'])})"
        + ("" if e["communicated"] or e["kind"] != "maintenance" else ", NOT communicated yet")
        for e in p.events
        if (views.parse_iso(e["start"]) or p.now) < end
        and (views.parse_iso(e["end"]) or p.now) > start
    ]
    events += [
        f"maintenance window #{w['id']}: {w['reason']} ({w['start']} to {w['end']})"
        for w in p.maintenance
        if (views.parse_iso(w["start"]) or p.now) < end
    ]
    contacts = {
        "day": _on_call_at(p, p.now) or ["unknown (no PagerDuty on-call data)"],
        "night": _on_call_at(p, night) or ["unknown (no PagerDuty on-call data)"],
    }
    result = {
        "taken_at": views.iso(p.now),
        "day": p.day.isoformat(),
        "shift": shift,
        "shift_starts": views.iso(incoming_at),
        "status": board["light"].upper(),
        "reasons": board["reasons"],
        "open_issues": open_issues,
        "watch_items": watch,
        "tomorrow_events": events,
        "contacts": contacts,
    }
    result["markdown"] = handoff_markdown(result)
    result["slack"] = handoff_slack(result)
    return result


def _bullets(items: Sequence[str], empty: str) -> list[str]:
    return [f"- {item}" for item in items] or [f"- {empty}"]


def handoff_markdown(h: Mapping[str, Any]) -> str:
    lines = [f"## On-Call Handoff - {h['day']}", "", f"### System Status: {h['status']}", ""]
    lines += ["### Open Issues:", *_bullets(h["open_issues"], "None"), ""]
    lines += ["### Watch Items:", *_bullets(h["watch_items"], "None"), ""]
    lines += ["### Tomorrow's Events:", *_bullets(h["tomorrow_events"], "None scheduled"), ""]
    lines += ["### Contact:"]
    lines.append("- Day shift: " + ", ".join(_mention(n) for n in h["contacts"]["day"]))
    lines.append("- Night shift: " + ", ".join(_mention(n) for n in h["contacts"]["night"]))
    return "\n".join(lines) + "\n"


def _mention(name: str) -> str:
    return name if name.startswith("unknown") else f"@{name}"


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def handoff_slack(h: Mapping[str, Any]) -> str:
    """Slack mrkdwn (no Markdown headings there: bold lines instead), paragraphs apart."""

    def block(title: str, items: Sequence[str], empty: str) -> str:
        body = "\n".join(f"• {_mrkdwn(i)}" for i in items) or f"• {empty}"
        return f"*{title}*\n{body}"

    parts = [
        f"*On-Call Handoff - {h['day']}*",
        f"*System Status: {h['status']}*",
        block("Open Issues:", h["open_issues"], "None"),
        block("Watch Items:", h["watch_items"], "None"),
        block("Tomorrow's Events:", h["tomorrow_events"], "None scheduled"),
        "*Contact:*\n• Day shift: "
        + ", ".join(_mrkdwn(n) for n in h["contacts"]["day"])
        + "\n• Night shift: "
        + ", ".join(_mrkdwn(n) for n in h["contacts"]["night"]),
    ]
    return "\n\n".join(parts)


def summary_slack(summary: Mapping[str, Any], numbers: Mapping[str, Any]) -> str:
    """The nightly summary as a Slack message."""
    lines = [f"*TenSafe daily summary - {summary['day']}*"]
    for title, rows in (("Business", summary["business"]), ("Operational", summary["operational"])):
        body = []
        for row in rows:
            actual = row["actual"]
            shown = "unknown" if actual is None else f"{actual:,.2f}".rstrip("0").rstrip(".")
            body.append(
                f"• {row['label']}: {shown} (target {row['target_text']}) — {row['status']}"
            )
        lines.append(f"*{title}*\n" + "\n".join(body))
    lines.append(
        "*Key metrics*\n"
        + "\n".join(f"• {m['label']}: {_mrkdwn(m['display'])}" for m in numbers.values())
    )
    return "\n\n".join(lines)


def now_utc() -> datetime:
    return datetime.now(UTC)
