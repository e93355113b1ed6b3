"""The checklist's views, pure functions of a `Picture`: the status board (Part 1, Step 1),
support (Step 4), customers (Steps 5 and 6), incidents (Step 2), the key numbers (Step 3), the
daily summary (Step 9), the pulse (Step 7) and capacity (Step 8). Times in the JSON are RFC 3339
UTC; every number says where it came from when it can come from more than one place.
"""

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from operations import rules
from operations.picture import Picture, day_start
from operations.rules import Band, Bands

Unit = Literal["percent", "ms", "count", "per_second", "per_hour", "epsilon", "up"]


def iso(moment: datetime | float | None) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def counted(number: int, one: str, many: str) -> str:
    """`1 alert`, `2 alerts`: a count with its noun in the right number."""
    return f"{number} {one if number == 1 else many}"


def short(moment: datetime | float | str | None) -> str:
    """A time for a sentence: `2026-11-27 09:40 UTC`."""
    if isinstance(moment, str):
        moment = parse_iso(moment)
    if moment is None:
        return "never"
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_FORMATS: dict[str, Callable[[float, int], str]] = {
    "percent": lambda v, d: f"{v:.{d}f}%",
    "ms": lambda v, _: f"{v:.0f} ms",
    "up": lambda v, _: "up" if v >= 1 else "down",
    "per_second": lambda v, _: f"{v:,.1f}/s",
    "per_hour": lambda v, _: f"{v:,.0f}/hour",
    "epsilon": lambda v, _: f"{v:.2f}",
    "count": lambda v, _: f"{v:,.0f}",
}


def display(value: float | None, unit: Unit, decimals: int = 1) -> str:
    return "no data" if value is None else _FORMATS[unit](value, decimals)


def change_display(before: float | None, after: float | None, unit: Unit, decimals: int) -> str:
    """A change with its sign: percentage points, milliseconds or a count; "-" unknown."""
    if before is None or after is None:
        return "-"
    change = after - before
    if unit == "percent":
        return f"{change:+.{decimals}f} pp"
    if unit == "ms":
        return f"{change:+.0f} ms"
    return f"{change:+,.{decimals}f}" if unit == "epsilon" else f"{change:+,.0f}"


def duration_text(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        hours = seconds / 3600
        return f"{hours:.0f} hour{'s' if round(hours) != 1 else ''}"
    return f"{seconds / 86400:.0f} days"


# -- Step 1: the status board -----------------------------------------------------------------


@dataclass(frozen=True)
class TileSpec:
    key: str
    label: str
    panel: str
    unit: Unit
    bands: Bands | None
    in_light: bool = False
    decimals: int = 1
    optional: bool = False
    """No data means "not monitored" (an exporter this deployment may not run)."""


PANELS = {
    "traffic_light": "Traffic light",
    "service_health": "Service health",
    "requests": "Request metrics",
    "privacy_training": "Privacy & training",
    "infrastructure": "Infrastructure",
}
TILES = (
    TileSpec("uptime_24h", "API uptime (24h)", "traffic_light", "percent", rules.UPTIME, True, 3),
    TileSpec(
        "error_rate_1h", "Error rate (1h)", "traffic_light", "percent", rules.ERROR_RATE, True, 3
    ),
    TileSpec("p95_latency", "P95 latency", "traffic_light", "ms", rules.P95_LATENCY, True),
    TileSpec("active_pods", "Active pods", "traffic_light", "count", rules.ACTIVE_PODS, True),
    TileSpec(
        "gpu_utilisation",
        "GPU utilization",
        "traffic_light",
        "percent",
        rules.GPU_UTILISATION,
        True,
    ),
    TileSpec("api_up", "API responding", "service_health", "up", rules.UP, True),
    TileSpec("database_up", "Database", "service_health", "up", rules.UP, True, optional=True),
    TileSpec("redis_up", "Redis", "service_health", "up", rules.UP, True, optional=True),
    TileSpec("queue_depth", "Queue depth", "service_health", "count", rules.QUEUE_DEPTH),
    TileSpec("requests_per_second", "Requests/sec", "requests", "per_second", None),
    TileSpec("epsilon_spent", "DP epsilon spent", "privacy_training", "epsilon", rules.EPSILON),
    TileSpec("he_operations_per_hour", "HE operations", "privacy_training", "per_hour", None),
    TileSpec("training_jobs_active", "Training jobs active", "privacy_training", "count", None),
    TileSpec("training_jobs_queued", "Training jobs queued", "privacy_training", "count", None),
    TileSpec("cpu", "CPU usage", "infrastructure", "percent", rules.CPU),
    TileSpec("memory", "Memory usage", "infrastructure", "percent", rules.MEMORY),
    TileSpec("disk", "Disk usage", "infrastructure", "percent", rules.DISK),
)
TILE_BY_KEY = {spec.key: spec for spec in TILES}


def tile(spec: TileSpec, p: Picture) -> dict[str, Any]:
    value = p.value(spec.key)
    error = p.readings.errors.get(spec.key)
    band: Band
    if spec.bands is None:
        band = "info" if value is not None else "unknown"
    elif value is None and spec.optional and error is None and p.readings.reachable:
        band = "info"  # the exporter behind it is not scraped here
    else:
        band = spec.bands.band(value)
    if value is None and error is None:
        error = p.readings.error if not p.readings.reachable else "no data"
    return {
        "key": spec.key,
        "label": spec.label,
        "panel": spec.panel,
        "value": value,
        "unit": spec.unit,
        "display": display(value, spec.unit, spec.decimals),
        "band": band,
        "in_traffic_light": spec.in_light and band != "info",
        "healthy": spec.bands.healthy if spec.bands else None,
        "warning": spec.bands.warning if spec.bands else None,
        "critical": spec.bands.critical if spec.bands else None,
        "action": rules.ACTIONS.get(spec.key),
        "query": p.cfg.query(spec.key),
        "error": error if value is None else None,
    }


def source_freshness(p: Picture) -> list[dict[str, Any]]:
    now = p.now.timestamp()
    rows = []
    for row in p.freshness:
        last = row.get("last_success")
        age = None if last is None else max(0.0, now - float(last))
        interval = float(row.get("interval") or 60.0)
        rows.append(
            {
                "source": row["source"],
                "up": bool(row.get("up")),
                "last_success": iso(last),
                "age_seconds": None if age is None else round(age, 1),
                "interval_seconds": interval,
                "stale": age is None or age > 3 * interval,
            }
        )
    return rows


def _own_reasons(p: Picture, sources: list[dict[str, Any]]) -> list[str]:
    """Why this service's own data or alerting needs watching (yellow at most)."""
    reasons = []
    for source in sources:
        name, age = source["source"], source["age_seconds"]
        if not source["up"]:
            reasons.append(f"source {name} is down (last success: {short(source['last_success'])})")
        elif source["stale"] and age is None:
            reasons.append(f"source {name} is stale (no success yet)")
        elif source["stale"]:
            old = f"{age:.0f}s" if age < 120 else duration_text(age)
            reasons.append(f"source {name} is stale ({old} old)")
    webhook = p.webhook or {}
    dead = sum((webhook.get("dead_letters") or {}).values())
    if dead:
        deliveries = counted(dead, "webhook delivery", "webhook deliveries")
        reasons.append(f"{deliveries} dead-lettered (tensafe-admin deliveries list --state dead)")
    if webhook.get("journal_failed"):
        notifications = counted(
            webhook["journal_failed"], "Alertmanager notification", "Alertmanager notifications"
        )
        reasons.append(f"{notifications} set aside (tensafe-admin notifications failed)")
    overdue = sum((webhook.get("overdue") or {}).values())
    if overdue:
        reasons.append(
            f"{counted(overdue, 'alert', 'alerts')} unacknowledged past the respond-by time"
        )
    return reasons


def open_alert_json(alert: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "alertname",
        "severity",
        "summary",
        "starts_at",
        "respond_by",
        "seconds_left",
        "overdue_seconds",
        "acknowledged_by",
        "acknowledged_at",
    )
    return {key: alert.get(key) for key in keys}


def status(p: Picture, checklist_progress: Mapping[str, Any] | None = None) -> dict[str, Any]:
    tiles = [tile(spec, p) for spec in TILES]
    light_tiles = [t for t in tiles if t["in_traffic_light"]]
    light = rules.light(t["band"] for t in light_tiles)
    reasons = []
    if not p.readings.reachable:
        reasons.append(f"operational numbers unknown: {p.readings.error}")
    for t in light_tiles:
        if t["band"] in ("warning", "critical"):
            limit = t[t["band"]]
            reasons.append(f"{t['label']} {t['display']} is {t['band']} ({limit})")
        elif t["band"] == "unknown" and p.readings.reachable:
            reasons.append(f"{t['label']}: {t['error'] or 'no data'}")
    sources = source_freshness(p)
    own = _own_reasons(p, sources)
    if own and light == "green":
        light = "yellow"
    reasons += own
    if light == "green":
        reasons.append("all systems operational")
    zendesk = p.overview("zendesk")
    return {
        "taken_at": iso(p.now),
        "light": light,
        "exit_code": rules.LIGHT_EXIT[light],
        "reasons": reasons,
        "panels": [{"key": key, "label": label} for key, label in PANELS.items()],
        "tiles": tiles,
        "prometheus": p.readings.status(),
        "sources": sources,
        "webhook": {"enabled": p.webhook is not None, **(p.webhook or {})},
        "alerts": [open_alert_json(a) for a in p.firing[:50]],
        "tickets": [ticket_json(t, p) for t in (zendesk.get("open_urgent") or [])[:20]],
        "checklist": checklist_progress,
    }


# -- Step 4: support ---------------------------------------------------------------------------

TRIAGE = {
    "p1": ("P1 (Service Down)", "Escalate immediately"),
    "p2": ("P2 (Major Bug)", "Assign to on-call"),
    "p3": ("P3 (Minor Issue)", "Queue for sprint"),
    "p4": ("P4 (Question)", "Route to docs/CSM"),
}
_NUMBERS = re.compile(r"#?\d+")
_NOT_WORDS = re.compile(r"[^\w\s]+")


def subject_pattern(subject: str) -> str:
    """A subject with ticket numbers and punctuation removed, lower case: repeated subjects
    ("Billing issue #812", "billing issue #907") become the same pattern."""
    text = _NOT_WORDS.sub(" ", _NUMBERS.sub(" ", subject.lower()))
    return " ".join(text.split())


def account_name(account: str | None, p: Picture) -> str | None:
    if account is None:
        return None
    usage = (p.facts.get("usage") or {}).get(account) or {}
    return str(usage.get("name") or account)


def ticket_json(ticket: Mapping[str, Any], p: Picture) -> dict[str, Any]:
    created = float(ticket["created_at"])
    return {
        "id": ticket["id"],
        "subject": ticket.get("subject") or "",
        "priority": ticket.get("priority"),
        "status": ticket.get("status"),
        "created_at": iso(created),
        "age_seconds": round(max(0.0, p.now.timestamp() - created), 1),
        "account": ticket.get("account"),
        "account_name": account_name(ticket.get("account"), p),
        "answered": bool(ticket.get("answered")),
        "breaching": bool(ticket.get("breaching")),
    }


def support_summary(p: Picture) -> dict[str, Any]:
    zendesk = p.overview("zendesk")
    priorities = zendesk.get("priorities") or {}
    rows = []
    for name, (label, action) in TRIAGE.items():
        counts = priorities.get(name) or {}
        target = counts.get("target_seconds")
        rows.append(
            {
                "priority": name,
                "label": label,
                "sla_seconds": target,
                "sla": None if target is None else duration_text(float(target)),
                "action": action,
                "open": counts.get("open"),
                "breaching": counts.get("breaching"),
                "oldest_unanswered_seconds": counts.get("oldest_unanswered_seconds"),
                "solved_24h": counts.get("solved_24h"),
            }
        )
    recent = zendesk.get("recent") or []
    tag_counts: Counter[str] = Counter(tag for t in recent for tag in t.get("tags") or ())
    by_subject: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for ticket in recent:
        pattern = subject_pattern(ticket.get("subject") or "")
        if pattern:
            by_subject[pattern].append(ticket)
    minimum = p.cfg.pattern_min
    subjects: list[dict[str, Any]] = [
        {
            "pattern": pattern,
            "count": len(tickets),
            "ticket_ids": [t["id"] for t in tickets[:20]],
            "example": tickets[-1].get("subject"),
        }
        for pattern, tickets in by_subject.items()
        if len(tickets) >= minimum
    ]
    subjects.sort(key=lambda s: (-s["count"], s["pattern"]))
    tags = [{"tag": t, "count": n} for t, n in tag_counts.most_common() if n >= minimum]
    urgent = [ticket_json(t, p) for t in zendesk.get("open_urgent") or []]
    long_waiting = [ticket_json(t, p) for t in zendesk.get("long_unanswered_tickets") or []]
    available = p.has("zendesk")
    return {
        "taken_at": iso(p.now),
        "available": available,
        "priorities": rows,
        "open_p1_p2": urgent,
        "open_p1_p2_total": zendesk.get("open_urgent_total", len(urgent)),
        "unanswered_over_24h": long_waiting,
        "unanswered_over_24h_total": zendesk.get("long_unanswered", len(long_waiting)),
        "created_24h": zendesk.get("created_24h"),
        "solved_24h": zendesk.get("solved_24h"),
        "patterns": {"min_tickets": minimum, "tags": tags[:20], "subjects": subjects[:20]},
        "answers": {
            "p1_p2_open": None if not available else bool(urgent),
            "unanswered_over_24h": None if not available else bool(long_waiting),
            "recurring_patterns": None if not available else bool(tags or subjects),
        },
        "sources": [s for s in source_freshness(p) if s["source"] == "zendesk"],
    }


# -- Steps 5 and 6: customers ---------------------------------------------------------------------

SIGNAL_TEXT = {
    "no_api_calls_7d": "No API calls in 7+ days",
    "no_api_calls_3d": "No API calls in 3-7 days",
    "tickets_rising": "Support tickets increasing",
    "ticket_breaching_sla": "An open ticket breaches its SLA",
    "payment_failed": "Failed payment",
    "seats_removed": "Team members removed",
    "seats_removed_quarter": "25%+ of seats removed",
}
SIGNAL_ACTION = {
    "payment_failed": "Contact billing: update the payment method",
    "no_api_calls_7d": "Reach out: check their integration is still running",
    "no_api_calls_3d": "Check in: usage dropped this week",
    "seats_removed_quarter": "CSM call: a quarter of the team left",
    "seats_removed": "CSM call: ask why seats were removed",
    "tickets_rising": "Review their tickets with the support lead",
    "ticket_breaching_sla": "Answer the ticket that breaches its SLA",
}


def suggested_action(signals: Sequence[Mapping[str, Any]]) -> str:
    if not signals:
        return "No action needed"
    heaviest = max(signals, key=lambda s: int(s.get("penalty") or 0))
    return SIGNAL_ACTION.get(str(heaviest.get("signal")), "Review the account")


def customer_json(account: str, p: Picture) -> dict[str, Any]:
    health = (p.facts.get("health") or {}).get(account) or {}
    stripe = (p.facts.get("stripe") or {}).get(account) or {}
    usage = (p.facts.get("usage") or {}).get(account) or {}
    zendesk = (p.facts.get("zendesk") or {}).get(account) or {}
    signals = [
        {**s, "text": SIGNAL_TEXT.get(str(s.get("signal")), str(s.get("signal")))}
        for s in health.get("signals") or []
    ]
    return {
        "account": account,
        "name": str(usage.get("name") or account),
        "tier": usage.get("tier"),
        "score": health.get("score"),
        "band": health.get("band"),
        "last_active": iso(usage.get("last_api_call")),
        "mrr": round(float(stripe.get("mrr") or 0.0), 2),
        "plan": stripe.get("plan"),
        "enterprise": bool(stripe.get("enterprise")),
        "past_due": bool(stripe.get("past_due")),
        "open_tickets": zendesk.get("open"),
        "breaching_tickets": zendesk.get("open_breaching"),
        "signals": signals,
        "risk_indicators": [s["text"] for s in signals],
        "suggested_action": suggested_action(signals),
    }


def _sorted_customers(customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(customers, key=lambda c: (c["score"], -c["mrr"], c["account"]))


def customers(p: Picture, band: str | None, limit: int, offset: int) -> dict[str, Any]:
    health = p.facts.get("health") if p.has("health") else None
    all_customers = [customer_json(a, p) for a in health or {}]
    bands: dict[str, dict[str, float]] = {b: {"customers": 0, "mrr": 0.0} for b in rules_bands()}
    for c in all_customers:
        entry = bands.setdefault(str(c["band"]), {"customers": 0, "mrr": 0.0})
        entry["customers"] += 1
        entry["mrr"] = round(entry["mrr"] + c["mrr"], 2)
    chosen = [c for c in all_customers if band is None or c["band"] == band]
    chosen = _sorted_customers(chosen)
    stripe = p.overview("stripe")
    return {
        "taken_at": iso(p.now),
        "available": health is not None,
        "band": band,
        "currency": stripe.get("currency"),
        "bands": bands,
        "at_risk_below": p.overview("health").get("at_risk_below"),
        "total": len(chosen),
        "offset": offset,
        "limit": limit,
        "customers": chosen[offset : offset + limit],
        "sources": [s for s in source_freshness(p) if s["source"] in ("health", "stripe", "usage")],
    }


def rules_bands() -> tuple[str, ...]:
    return ("at_risk", "watch", "healthy")


def customer_totals(p: Picture) -> dict[str, Any] | None:
    """What a day's record keeps for the customers page's trend: customers and MRR per band,
    and the total MRR (reporting currency). None before the first health scores."""
    answer = customers(p, None, 0, 0)
    if not answer["available"]:
        return None
    return {
        "bands": answer["bands"],
        "mrr": p.overview("stripe").get("mrr"),
        "currency": answer["currency"],
    }


def upcoming_maintenance(p: Picture, within: timedelta) -> list[dict[str, Any]]:
    horizon = p.now + within
    events = [
        {**e, "source": "calendar"}
        for e in p.events
        if e["kind"] == "maintenance"
        and (parse_iso(e["end"]) or p.now) > p.now
        and (parse_iso(e["start"]) or p.now) < horizon
    ]
    windows = [
        {
            "id": w["id"],
            "start": w["start"],
            "end": w["end"],
            "kind": "maintenance",
            "note": w["reason"],
            "communicated": None,
            "source": "alert_silencing",
        }
        for w in p.maintenance
        if (parse_iso(w["start"]) or p.now) < horizon
    ]
    return events + windows


def enterprise(p: Picture) -> dict[str, Any]:
    health = p.facts.get("health") or {}
    stripe = p.facts.get("stripe") or {}
    accounts = [a for a in set(health) | set(stripe) if (stripe.get(a) or {}).get("enterprise")]
    uptime = p.value("uptime_24h")
    sla = p.cfg.uptime_sla
    uptime_ok = None if uptime is None else uptime >= sla
    maintenance = upcoming_maintenance(p, timedelta(days=7))
    planned = [m for m in maintenance if m["source"] == "calendar"]
    communicated = all(m["communicated"] for m in planned)
    pagerduty = p.overview("pagerduty")
    open_incidents = pagerduty.get("open_total") if p.has("pagerduty") else None
    rows = []
    for account in accounts:
        customer = customer_json(account, p)
        breaching = customer["breaching_tickets"]
        checks = {
            "healthy": None if customer["band"] is None else customer["band"] != "at_risk",
            "no_breaching_tickets": None if breaching is None else breaching == 0,
            "uptime_sla": uptime_ok,
            "maintenance_communicated": communicated,
        }
        rows.append({**customer, "checks": checks, "ok": all(v is True for v in checks.values())})
    rows.sort(key=lambda c: (c["ok"], c["score"] if c["score"] is not None else 101, c["account"]))
    return {
        "taken_at": iso(p.now),
        "threshold_mrr": p.overview("stripe").get("enterprise_mrr_threshold"),
        "currency": p.overview("stripe").get("currency"),
        "uptime_24h": uptime,
        "uptime_sla": sla,
        "platform_open_incidents": open_incidents,
        "upcoming_maintenance": maintenance,
        "people_checks": ["No pending security reviews"],
        "customers": rows,
    }


# -- Step 2: incidents -------------------------------------------------------------------------


def incident_checklist(incident: Mapping[str, Any], p: Picture) -> list[dict[str, Any]]:
    status_ = incident.get("status")
    if status_ == "resolved":
        handled = ("done", f"resolved at {incident.get('resolved_at')}")
    elif status_ == "acknowledged":
        handled = ("done", f"acknowledged at {incident.get('acknowledged_at')}, being handled")
    else:
        handled = ("failed", "triggered and not acknowledged yet")
    items = [
        {
            "key": "resolved_or_escalated",
            "text": "Incident resolved or escalated appropriately",
            "answered_by": "data",
            "state": handled[0],
            "detail": handled[1],
        }
    ]
    major = incident.get("priority") in ("P1", "P2")
    people = (
        ("root_cause", "Root cause identified (or investigation ongoing)", True),
        ("customer_communication", "Customer communication sent if required", True),
        ("post_mortem", "Post-mortem scheduled if P1/P2", major),
    )
    for key, text, needed in people:
        found = p.marks_for(f"incident.{incident.get('id')}.{key}")
        if found:
            last = found[-1]
            state, detail = (
                "done",
                f"{last['by']} at {short(last['at'])}"
                + (f": {last['note']}" if last["note"] else ""),
            )
        elif not needed:
            state, detail = "done", f"not needed ({incident.get('priority')})"
        else:
            state, detail = "open", f"tensafe-admin incidents mark {incident.get('id')} {key}"
        items.append(
            {"key": key, "text": text, "answered_by": "people", "state": state, "detail": detail}
        )
    return items


def incidents(p: Picture, since: datetime) -> dict[str, Any]:
    pagerduty = p.overview("pagerduty")
    listed = []
    for incident in pagerduty.get("incidents") or []:
        created = parse_iso(incident.get("created_at"))
        is_open = incident.get("status") in ("triggered", "acknowledged")
        if created is None or (created < since and not is_open):
            continue
        listed.append(
            {
                **incident,
                "opened_before_window": created < since,
                "post_mortem_needed": incident.get("priority") in ("P1", "P2"),
                "checklist": incident_checklist(incident, p),
            }
        )
    return {
        "taken_at": iso(p.now),
        "since": iso(since),
        "available": p.has("pagerduty"),
        "incidents": listed,
        "opened_in_window": sum(1 for i in listed if not i["opened_before_window"]),
        "open_total": pagerduty.get("open_total"),
    }


# -- Step 3: the key numbers ---------------------------------------------------------------------

KEY_NUMBERS: tuple[tuple[str, str, Unit], ...] = (
    ("dau", "Active Users (DAU)", "count"),
    ("api_calls_24h", "API Calls (24h)", "count"),
    ("training_jobs_24h", "Training Jobs (24h)", "count"),
    ("error_count_24h", "Error Count (24h)", "count"),
    ("p95_latency_avg_ms", "P95 Latency (avg)", "ms"),
)


def key_numbers(p: Picture) -> dict[str, float | None]:
    """Today's Step 3 numbers: business ones from the exporter, operational ones from
    Prometheus (None when unknown)."""
    usage = p.overview("usage")
    jobs = usage.get("training_jobs_24h")
    return {
        "dau": usage.get("dau"),
        "api_calls_24h": usage.get("api_calls_24h"),
        "training_jobs_24h": None if jobs is None else float(sum(jobs.values())),
        "error_count_24h": p.value("error_count_24h"),
        "p95_latency_avg_ms": p.value("p95_latency_avg_24h"),
    }


_YESTERDAY_QUERY = {"p95_latency_avg_ms": "p95_latency_avg_24h"}


def yesterday_numbers(p: Picture) -> tuple[dict[str, float | None], dict[str, str | None]]:
    """Yesterday's numbers: the stored daily record first, Prometheus 24 hours ago second."""
    stored = ((p.yesterday.record if p.yesterday else None) or {}).get("key_numbers") or {}
    values: dict[str, float | None] = {}
    origin: dict[str, str | None] = {}
    for key, _, _ in KEY_NUMBERS:
        if stored.get(key) is not None:
            values[key], origin[key] = float(stored[key]), "daily_record"
            continue
        value = p.yesterday_readings.get(_YESTERDAY_QUERY.get(key, key))
        values[key], origin[key] = value, None if value is None else "prometheus_24h_ago"
    return values, origin


def morning_snapshot(p: Picture) -> dict[str, Any]:
    today = key_numbers(p)
    yesterday, origin = yesterday_numbers(p)
    rows = []
    for key, label, unit in KEY_NUMBERS:
        rule = rules.CONCERNS[key]
        before, now_ = yesterday[key], today[key]
        change = rules.change_percent(before, now_)
        rows.append(
            {
                "key": key,
                "label": label,
                "unit": unit,
                "yesterday": before,
                "yesterday_source": origin[key],
                "today": now_,
                "trend": rules.trend(before, now_),
                "change": None if before is None or now_ is None else now_ - before,
                "change_percent": None if change is None else round(change, 2),
                "concern_if": rule.text,
                "concern": rule.applies(before, now_),
            }
        )
    return {
        "taken_at": iso(p.now),
        "day": p.day.isoformat(),
        "rows": rows,
        "concerns": [r["label"] for r in rows if r["concern"]],
        "prometheus": p.readings.status(),
    }


# -- Step 9: the daily summary -----------------------------------------------------------------


def _row(
    key: str,
    label: str,
    actual: float | None,
    unit: str,
    target: float | None,
    target_text: str,
    *,
    at_most: bool = False,
    status_: str | None = None,
) -> dict[str, Any]:
    return {
        "key": key,
        "label": label,
        "actual": actual,
        "unit": unit,
        "target": target,
        "target_text": target_text,
        "status": status_ or rules.target_status(actual, target, at_most=at_most),
    }


def daily_summary(p: Picture) -> dict[str, Any]:
    targets = p.cfg.targets
    usage, stripe, zendesk = p.overview("usage"), p.overview("stripe"), p.overview("zendesk")
    currency = str(stripe.get("currency") or "usd").upper()

    def text(target: float | None, prefix: str = "") -> str:
        return "no target set" if target is None else f"{prefix}{target:,.0f}"

    business = [
        _row(
            "signups",
            "New Signups",
            usage.get("signups_24h"),
            "count",
            targets.signups,
            text(targets.signups, ">= "),
        ),
        _row(
            "activated",
            "Activated Users",
            usage.get("activations_24h"),
            "count",
            targets.activations,
            text(targets.activations, ">= "),
        ),
        _row(
            "paid_conversions",
            "Paid Conversions",
            stripe.get("trial_conversions_24h"),
            "count",
            targets.paid_conversions,
            text(targets.paid_conversions, ">= "),
        ),
        _row(
            "churned",
            "Churned Users",
            stripe.get("churned_customers_24h"),
            "count",
            targets.churned,
            text(targets.churned, "<= "),
            at_most=True,
        ),
        _row(
            "mrr_change",
            "MRR Change",
            stripe.get("mrr_change_today"),
            currency,
            targets.mrr_change,
            "no target set"
            if targets.mrr_change is None
            else f">= {targets.mrr_change:+,.0f} {currency}",
        ),
    ]
    uptime = p.value("uptime_24h")
    error_rate = p.value("error_rate_24h")
    p95 = p.value("p95_latency_avg_24h")
    jobs = usage.get("training_jobs_24h")
    urgent_open = zendesk.get("open_urgent_total")
    priorities = zendesk.get("priorities") or {}
    solved_urgent = sum(int((priorities.get(n) or {}).get("solved_24h") or 0) for n in ("p1", "p2"))
    support_status = "unknown" if urgent_open is None else ("met" if urgent_open == 0 else "missed")
    operational = [
        _row("uptime", "Uptime", uptime, "percent", p.cfg.uptime_sla, f"{p.cfg.uptime_sla:g}%"),
        _row(
            "error_rate",
            "Error Rate",
            error_rate,
            "percent",
            0.1,
            "< 0.1%",
            status_=_below(error_rate, 0.1),
        ),
        _row("p95_latency", "P95 Latency", p95, "ms", 100, "< 100ms", status_=_below(p95, 100)),
        _row(
            "training_jobs_completed",
            "Training Jobs Completed",
            None
            if jobs is None
            else float(sum(jobs.get(status, 0) for status in p.cfg.completed_job_statuses)),
            "count",
            None,
            "N/A",
            status_="no_target",
        ),
        {
            **_row(
                "support_resolved",
                "Support Tickets Resolved",
                zendesk.get("solved_24h"),
                "count",
                None,
                "All P1/P2",
                status_=support_status,
            ),
            "p1_p2_solved": solved_urgent if p.has("zendesk") else None,
            "p1_p2_open": urgent_open,
        },
    ]
    return {
        "taken_at": iso(p.now),
        "day": p.day.isoformat(),
        "window": "the 24 hours before taken_at (the MRR change: since 00:00 UTC)",
        "business": business,
        "operational": operational,
        "prometheus": p.readings.status(),
    }


def _below(value: float | None, limit: float) -> str:
    if value is None:
        return "unknown"
    return "met" if value < limit else "missed"


# -- Step 7: the pulse -----------------------------------------------------------------------------


def traffic(p: Picture) -> dict[str, Any]:
    band = rules.traffic_band(p.now.astimezone(UTC))
    rps, peak = p.value("requests_per_second"), p.value("traffic_peak_7d")
    if rps is not None and peak is not None:
        # The peak subquery samples every 5 minutes: now may be higher than any of them.
        peak = max(peak, rps)
    share = None if rps is None or not peak else rps / peak * 100
    return {
        "requests_per_second": rps,
        "peak_7d": peak,
        "share_of_peak_percent": None if share is None else round(share, 1),
        "band": {
            "hours_utc": band.hours,
            "expected": f"{band.expected_low:g}-{band.expected_high:g}% of peak",
            "alert_if": band.alert_text,
        },
        "unusual": None if share is None else band.unusual(share),
    }


def morning_numbers(p: Picture) -> dict[str, Any]:
    """What the day keeps of its morning: the key numbers and the Step 1 picture."""
    board = status(p)
    return {
        "key_numbers": key_numbers(p),
        "light": board["light"],
        "tiles": {t["key"]: t["value"] for t in board["tiles"]},
        "sources_up": all(s["up"] for s in board["sources"]),
    }


PULSE_TILES = (
    "uptime_24h",
    "error_rate_1h",
    "p95_latency",
    "active_pods",
    "gpu_utilisation",
    "queue_depth",
    "cpu",
    "memory",
)
"""The Step 1 tiles pulse compares with the morning's."""


def pulse(p: Picture) -> dict[str, Any]:
    morning = p.today.morning if p.today else None
    since = (
        datetime.fromtimestamp(p.today.morning_at, UTC)
        if p.today and p.today.morning_at
        else day_start(p.day)
        + timedelta(hours=p.cfg.morning_at.hour, minutes=p.cfg.morning_at.minute)
    )
    now_numbers = key_numbers(p)
    board = status(p)
    # Every row, morning or not: before the morning numbers are stored, "now" still counts.
    before = (morning or {}).get("key_numbers") or {}
    rows: list[tuple[str, str, Unit, int, float | None, float | None]] = [
        (key, label, unit, 0, before.get(key), now_numbers.get(key))
        for key, label, unit in KEY_NUMBERS
    ]
    tiles_then = (morning or {}).get("tiles") or {}
    rows += [
        (t["key"], t["label"], t["unit"], spec.decimals, tiles_then.get(t["key"]), t["value"])
        for t in board["tiles"]
        if t["key"] in PULSE_TILES
        for spec in [TILE_BY_KEY[t["key"]]]
    ]
    changes = [
        {
            "key": key,
            "label": label,
            "unit": unit,
            "morning": then,
            "now": now_,
            "change": None if then is None or now_ is None else now_ - then,
            "morning_display": "not stored" if morning is None else display(then, unit, decimals),
            "now_display": display(now_, unit, decimals),
            "change_display": change_display(then, now_, unit, decimals),
        }
        for key, label, unit, decimals, then, now_ in rows
    ]
    new_alerts = [
        open_alert_json(a)
        for a in p.alerts_today
        if (parse_iso(a.get("first_received_at")) or p.now) >= since
    ]
    queue = p.value("queue_depth")
    flow = traffic(p)
    today_end = day_start(p.day) + timedelta(days=1)
    events_today = [
        e
        for e in p.events
        if (parse_iso(e["start"]) or p.now) < today_end and (parse_iso(e["end"]) or p.now) > p.now
    ]
    return {
        "taken_at": iso(p.now),
        "since": iso(since),
        "morning_recorded": morning is not None,
        "light_then": None if not morning else morning.get("light"),
        "light_now": board["light"],
        "changes": changes,
        "new_alerts": new_alerts,
        "traffic": flow,
        "queue": {"depth": queue, "limit": 100, "within": None if queue is None else queue <= 100},
        "events_today": events_today,
        "prometheus": p.readings.status(),
        "answers": {
            "new_alerts": bool(new_alerts) if p.webhook is not None else None,
            "traffic_normal": None if flow["unusual"] is None else not flow["unusual"],
            "queue_within_limits": None if queue is None else queue <= 100,
        },
    }


# -- Step 8: capacity ------------------------------------------------------------------------------

PRE_SCALE_KINDS = ("maintenance", "demo", "onboarding", "campaign", "spike")


def capacity(p: Picture) -> dict[str, Any]:
    resources = []
    for spec in rules.CAPACITY:
        value = p.value(spec.key)
        over = spec.over(value)
        resources.append(
            {
                "key": spec.key,
                "label": spec.label,
                "value": value,
                "display": display(value, "percent"),
                "threshold": spec.threshold,
                "threshold_text": f"> {spec.threshold:g}%",
                "over": over,
                "action": spec.action if over else None,
            }
        )
    latency, pods = p.value("p95_latency"), p.value("active_pods")
    decision = rules.scaling_decision(
        cpu=p.value("cpu"), memory=p.value("memory"), latency_ms=latency, pods=pods, now=p.now
    )
    horizon = p.now + timedelta(hours=24)
    coming = [
        e
        for e in p.events
        if e["kind"] in PRE_SCALE_KINDS and p.now < (parse_iso(e["start"]) or p.now) < horizon
    ]
    advice = [
        f"Pre-scale before {short(e['start'])} ({e['kind']}: {e['note']}): alert on-call,"
        " prepare customer communication, test critical paths"
        for e in coming
    ]
    return {
        "taken_at": iso(p.now),
        "resources": resources,
        "p95_latency_ms": latency,
        "active_pods": pods,
        "decision": {
            "action": decision.action,
            "pods_now": decision.pods_now,
            "pods_target": decision.pods_target,
            "reasons": list(decision.reasons),
            "rule": "scale up 25% (at least +2 pods) if CPU > 70% or memory > 80% or P95 > "
            "100ms; scale down 1 pod if CPU < 30% and memory < 40% after 18:00 UTC, never below 3",
        },
        "events_next_24h": coming,
        "pre_scale_advice": advice,
        "within_limits": None
        if any(r["over"] is None for r in resources)
        else not any(r["over"] for r in resources),
        "prometheus": p.readings.status(),
    }


def is_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def parse_day(text: str, today: date) -> date | None:
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
