"""The views as pure functions of a hand-built Picture: recurring patterns, the scaling box
people tick, incidents and their marks, the on-call contacts, the filled template."""

from datetime import UTC, datetime, timedelta
from typing import Any

from operations import checklist, views
from operations.config import OperatorConfig
from operations.picture import Picture
from operations.prometheus import Readings, not_configured

NOW = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)


def readings(**values: float | None) -> Readings:
    return Readings(configured=True, url="http://prom:9090", reachable=True, values=dict(values))


def picture(**kw: Any) -> Picture:
    base: dict[str, Any] = {
        "now": NOW,
        "cfg": OperatorConfig(),
        "readings": not_configured(),
        "yesterday_readings": not_configured(),
    }
    return Picture(**(base | kw))


def ticket(number: int, subject: str, tags: list[str], **kw: Any) -> dict[str, Any]:
    return {
        "id": number,
        "subject": subject,
        "priority": "p3",
        "status": "new",
        "created_at": (NOW - timedelta(hours=2)).timestamp(),
        "account": None,
        "answered": False,
        "breaching": False,
        "tags": tags,
    } | kw


def test_recurring_subjects_and_tags_from_the_pattern_minimum() -> None:
    recent = [
        ticket(812, "Billing issue #812", ["billing"]),
        ticket(907, "billing issue #907", ["billing"]),
        ticket(913, "Billing Issue: #913!", ["billing", "invoice"]),
        ticket(920, "Login issue #920", ["login"]),
        ticket(921, "Login issue #921", ["login"]),
    ]
    p = picture(overviews={"zendesk": {"recent": recent, "priorities": {}}})
    patterns = views.support_summary(p)["patterns"]
    assert patterns["subjects"] == [
        {
            "pattern": "billing issue",
            "count": 3,
            "ticket_ids": [812, 907, 913],
            "example": "Billing Issue: #913!",
        }
    ]
    assert patterns["tags"] == [{"tag": "billing", "count": 3}]  # login: 2 < 3
    assert views.support_summary(p)["answers"]["recurring_patterns"] is True


def test_needed_scaling_is_open_until_someone_marks_it_done() -> None:
    cfg = OperatorConfig()
    tight = readings(cpu=75.0, memory=60.0, p95_latency=80.0, active_pods=4.0)
    p = picture(readings=tight, cfg=cfg)
    items = {i["key"]: i for s in checklist.checklist(p)["sections"] for i in s["items"]}
    scaling = items["afternoon.scaling"]
    assert (scaling["state"], scaling["text"]) == ("open", "Scaling needed")
    assert "CPU 75.0% > 70%" in scaling["detail"]
    assert items["afternoon.cpu"]["state"] == "failed"
    mark = {
        "id": 1,
        "day": "2026-11-27",
        "step": "afternoon.scaling",
        "by": "ada",
        "note": "6 pods",
        "at": "2026-11-27T14:40:00Z",
    }
    p = picture(readings=tight, cfg=cfg, marks=[mark])
    items = {i["key"]: i for s in checklist.checklist(p)["sections"] for i in s["items"]}
    assert (items["afternoon.scaling"]["state"], items["afternoon.scaling"]["text"]) == (
        "done",
        "SCALED to 6 pods",
    )
    assert views.capacity(p)["decision"]["pods_target"] == 6  # 4 + max(2, 25 %)


def incident(number: int, status: str, priority: str, created: timedelta) -> dict[str, Any]:
    return {
        "id": f"P{number:06d}",
        "number": number,
        "title": f"Incident {number}",
        "status": status,
        "urgency": "high",
        "priority": priority,
        "service": "API Gateway",
        "created_at": (NOW - created).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "acknowledged_at": None,
        "resolved_at": None,
        "assignees": [],
        "html_url": None,
    }


def test_incidents_since_with_open_ones_and_marks_of_yesterday() -> None:
    listed = [
        incident(1, "resolved", "P1", timedelta(hours=3)),
        incident(2, "triggered", "P3", timedelta(days=9)),  # old but open: listed
        incident(3, "resolved", "P4", timedelta(hours=12)),  # before the window: not listed
    ]
    cause = {
        "id": 7,
        "day": "2026-11-26",
        "step": "incident.P000001.root_cause",
        "by": "ada",
        "note": "a full disk",
        "at": "2026-11-26T23:10:00Z",
    }
    p = picture(overviews={"pagerduty": {"incidents": listed, "open_total": 1}}, marks=[cause])
    result = views.incidents(p, NOW - timedelta(hours=8))
    assert [i["number"] for i in result["incidents"]] == [1, 2]
    assert result["opened_in_window"] == 1
    first = {c["key"]: c for c in result["incidents"][0]["checklist"]}
    assert first["root_cause"]["state"] == "done"
    assert first["root_cause"]["detail"] == "ada at 2026-11-26 23:10 UTC: a full disk"
    assert first["post_mortem"]["state"] == "open"  # P1: needed, not marked
    second = {c["key"]: c for c in result["incidents"][1]["checklist"]}
    assert second["resolved_or_escalated"]["state"] == "failed"
    assert second["post_mortem"] == {
        "key": "post_mortem",
        "text": "Post-mortem scheduled if P1/P2",
        "answered_by": "people",
        "state": "done",
        "detail": "not needed (P3)",
    }


def test_handoff_names_day_and_night_on_call_per_policy() -> None:
    def shift(policy: str, user: str, start: datetime, end: datetime) -> dict[str, Any]:
        return {
            "escalation_policy": policy,
            "level": 1,
            "user": user,
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    night = NOW.replace(hour=20, minute=0)
    oncalls = [
        shift("Platform", "Ada Lovelace", NOW - timedelta(hours=6), night),
        shift("Platform", "Grace Hopper", night, night + timedelta(hours=12)),
        shift("Billing", "Alan Turing", NOW - timedelta(hours=2), NOW + timedelta(hours=1)),
    ]
    p = picture(overviews={"pagerduty": {"incidents": [], "oncalls": oncalls}})
    handoff = checklist.handoff(p, "night")
    assert handoff["contacts"] == {
        "day": ["Alan Turing (Billing)", "Ada Lovelace (Platform)"],
        "night": ["unknown (Billing)", "Grace Hopper (Platform)"],
    }
    assert handoff["shift_starts"] == "2026-11-27T20:00:00Z"
    assert "- Night shift: unknown (Billing), @Grace Hopper (Platform)" in handoff["markdown"]
    assert "*On-Call Handoff - 2026-11-27*" in handoff["slack"]
    assert "### System Status: UNKNOWN" in handoff["markdown"]  # no Prometheus: never GREEN


def test_the_template_has_no_blank_even_with_nothing_known() -> None:
    result = checklist.checklist(picture())
    markdown = result["markdown"]
    assert "___" not in markdown
    assert "- DAU: unknown (no usage data)" in markdown
    assert "- MRR Change: unknown (no Stripe data)" in markdown
    assert "## Notes/Issues:\n- None recorded." in markdown
    states = {i["state"] for s in result["sections"] for i in s["items"]}
    assert "failed" not in states  # nothing known: nothing crossed
    assert result["progress"]["total"] == 17


def test_the_lights_own_reasons_count_in_the_right_number() -> None:
    one = views.status(picture(webhook={"overdue": {"critical": 1}, "journal_failed": 1}))
    assert "1 alert unacknowledged past the respond-by time" in one["reasons"]
    hint = "1 Alertmanager notification set aside (tensafe-admin notifications failed)"
    assert hint in one["reasons"]
    many = views.status(
        picture(webhook={"overdue": {"critical": 2, "warning": 1}, "dead_letters": {"slack": 2}})
    )
    assert "3 alerts unacknowledged past the respond-by time" in many["reasons"]
    hint = "2 webhook deliveries dead-lettered (tensafe-admin deliveries list --state dead)"
    assert hint in many["reasons"]


def test_stale_and_down_sources_read_as_times_people_use() -> None:
    at = NOW.timestamp()
    freshness = [
        {"source": "stripe", "up": True, "last_success": at - 1201, "interval": 60},
        {"source": "usage", "up": True, "last_success": at - 90, "interval": 10},
        {"source": "health", "up": True, "last_success": None, "interval": 10},
        {"source": "zendesk", "up": False, "last_success": at - 7200, "interval": 60},
        {"source": "pagerduty", "up": False, "last_success": None, "interval": 60},
    ]
    reasons = views.status(picture(freshness=freshness))["reasons"]
    assert reasons[-5:] == [
        "source stripe is stale (20 min old)",
        "source usage is stale (90s old)",
        "source health is stale (no success yet)",
        "source zendesk is down (last success: 2026-11-27 12:30 UTC)",
        "source pagerduty is down (last success: never)",
    ]
