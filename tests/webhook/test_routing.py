"""Matchers, severity, route selection and maintenance downgrades (pure functions)."""

from datetime import UTC, datetime, timedelta

import pytest

from webhook.config import WebhookConfig
from webhook.routing import (
    MatcherError,
    RouteSpec,
    TargetSpec,
    Window,
    active_window,
    apply_maintenance,
    effective_severity,
    match_routes,
    parse_matcher,
    targets_of,
)

LABELS = {"alertname": "DiskSpace", "severity": "warning", "instance": "db-1:9100", "team": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('severity="warning"', True),
        ("severity=warning", True),
        ('severity!="critical"', True),
        ('alertname=~"Disk.*"', True),
        ('alertname=~"Disk"', False),  # anchored: the whole value must match
        ('alertname!~"High.*|Queue.*"', True),
        ('missing=""', True),  # a missing label equals the empty string
        ('team!=""', False),
        ('instance=~"db-[0-9]+:9100"', True),
        (' severity = "warning" ', True),
        ('summary="quote \\" inside"', False),
    ],
)
def test_matchers(text: str, expected: bool) -> None:
    assert parse_matcher(text).matches(LABELS) is expected


@pytest.mark.parametrize(
    "text", ["severity", '="x"', 'a=~"("', 'a=="x"', 'a="unterminated', "1a=x"]
)
def test_bad_matchers_are_rejected(text: str) -> None:
    with pytest.raises(MatcherError):
        parse_matcher(text)


def test_effective_severity() -> None:
    overrides = {"NewCustomerSignup": "info"}
    assert effective_severity({"severity": "critical"}, "warning", {}) == "critical"
    assert effective_severity({"severity": "CRITICAL"}, "warning", {}) == "critical"
    assert effective_severity({"severity": "page"}, "warning", {}) == "warning"
    assert effective_severity({}, "info", {}) == "info"
    signup = {"alertname": "NewCustomerSignup", "severity": "critical"}
    assert effective_severity(signup, "warning", overrides) == "info"  # type: ignore[arg-type]


def route(
    name: str, *matchers: str, targets: tuple[TargetSpec, ...] = (), cont: bool = False
) -> RouteSpec:
    return RouteSpec(name, tuple(parse_matcher(m) for m in matchers), targets, cont)


def test_first_match_wins_unless_continue() -> None:
    slack = TargetSpec("slack", "alerts")
    desk = TargetSpec("zendesk", "default")
    routes = [
        route("disks", 'alertname=~"Disk.*"', targets=(slack,), cont=True),
        route("storage", 'instance=~"db-.*"', targets=(slack, desk)),
        route("warning", 'severity="warning"', targets=(desk,)),
    ]
    matched = match_routes(routes, LABELS)
    assert [r.name for r in matched] == ["disks", "storage"]
    assert targets_of(matched) == [slack, desk]  # no repeats
    assert match_routes(routes, {"severity": "critical"}) == []


def test_default_routes_follow_the_checklist() -> None:
    specs = WebhookConfig().route_specs()
    pick = lambda severity: targets_of(match_routes(specs, {"severity": severity}))  # noqa: E731
    assert pick("critical") == [
        TargetSpec("pagerduty", "default", "high"),
        TargetSpec("slack", "incidents"),
    ]
    assert pick("warning") == [TargetSpec("slack", "alerts")]
    assert pick("info") == [TargetSpec("zendesk", "default")]


def test_maintenance_windows() -> None:
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    window = Window(
        1, now - timedelta(hours=1), now + timedelta(hours=1), (parse_matcher('team=""'),), "drill"
    )
    assert active_window([window], LABELS, now) is window
    assert active_window([window], LABELS, now + timedelta(hours=1)) is None  # end is exclusive
    assert active_window([window], {"team": "payments"}, now) is None

    page, incidents = TargetSpec("pagerduty", "default"), TargetSpec("slack", "incidents")
    assert apply_maintenance([page, incidents], None) == ([incidents], "incidents")
    assert apply_maintenance([page], "ops") == ([TargetSpec("slack", "ops")], "ops")
    assert apply_maintenance([page], None) == ([], None)  # nowhere to note it: suppressed
    assert apply_maintenance([incidents], "ops") == ([incidents], None)  # nothing to downgrade


def test_config_rejects_unknown_destinations_and_missing_auth() -> None:
    with pytest.raises(ValueError, match="api_auth") as error:
        WebhookConfig.model_validate(
            {"enabled": True, "receivers": {"/api/v1/alerts": {"auth": "none"}}}
        )
    assert "destination 'default' is not configured" in str(error.value)
    with pytest.raises(ValueError, match="bearer_token and/or basic"):
        WebhookConfig.model_validate({"receivers": {"/api/v1/alerts": {"auth": {}}}})
    with pytest.raises(ValueError, match="invalid matcher"):
        WebhookConfig.model_validate({"routes": [{"name": "x", "matchers": ["nope"]}]})
