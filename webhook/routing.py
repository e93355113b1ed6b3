"""Severity and routing: pure functions over an alert's labels.

Rules:
- Severity is the `severity` label when it is critical / warning / info, else the configured
  default; a per-alertname override beats both.
- Matchers follow Alertmanager: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`
  (value quoted or bare; regexes are anchored at both ends; a missing label equals "").
  Regexes are RE2, like Alertmanager's (Go's regexp): matching takes time linear in the label
  value, so no regex an operator writes can hold routing up (a backtracking engine takes
  hours over `(a+)+b` against forty `a`s); backreferences and lookarounds are refused.
- Routes are tried in order. The first matching route wins unless it sets `continue`, in which
  case later routes are tried as well. Matchers see the labels with `severity` replaced by the
  effective severity, so an unknown severity routes like the default.
- During a matching maintenance window (matched against the same labels as routes, with the
  effective severity), PagerDuty pages become a Slack note.
"""

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import re2

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")
Operator = Literal["=", "!=", "=~", "!~"]

_MATCHER = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|[^"\s]*)\s*$"""
)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the MatcherError says it; RE2 would also print to stderr


class MatcherError(ValueError):
    pass


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Operator
    value: str
    pattern: Any = None
    """The compiled RE2 regex of `=~` and `!~` (google-re2 has no type hints)."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value)}"


def parse_matcher(text: str) -> Matcher:
    """Parse one Alertmanager-style matcher, e.g. `alertname=~"Disk.*"`."""
    found = _MATCHER.match(text)
    if found is None:
        raise MatcherError(f'invalid matcher {text!r}: expected name="value" with =, !=, =~ or !~')
    raw = found["value"]
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise MatcherError(f"invalid quoted value in matcher {text!r}") from None
    else:
        value = raw
    op: Operator = found["op"]  # type: ignore[assignment]
    pattern = None
    if op in ("=~", "!~"):
        try:
            pattern = re2.compile(value, options=_RE2_OPTIONS)
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args else "invalid"
            raise MatcherError(f"invalid regex in matcher {text!r}: {reason}") from None
    return Matcher(found["name"], op, value, pattern)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def effective_severity(
    labels: Mapping[str, str], default: Severity, overrides: Mapping[str, Severity]
) -> Severity:
    override = overrides.get(labels.get("alertname", ""))
    if override is not None:
        return override
    label = labels.get("severity", "").lower()
    for severity in SEVERITIES:
        if label == severity:
            return severity
    return default


def routing_labels(labels: Mapping[str, str], severity: Severity) -> dict[str, str]:
    return {**labels, "severity": severity}


@dataclass(frozen=True)
class TargetSpec:
    type: Literal["pagerduty", "slack", "zendesk", "slack_digest"]
    destination: str
    urgency: Literal["high", "low"] = "high"


@dataclass(frozen=True)
class RouteSpec:
    name: str
    matchers: tuple[Matcher, ...]
    targets: tuple[TargetSpec, ...]
    continue_matching: bool = False
    sla_seconds: float | None = None


def match_routes(routes: Sequence[RouteSpec], labels: Mapping[str, str]) -> list[RouteSpec]:
    """The routes an alert goes to, in order (Alertmanager's first-match plus `continue`)."""
    matched: list[RouteSpec] = []
    for route in routes:
        if matches_all(route.matchers, labels):
            matched.append(route)
            if not route.continue_matching:
                break
    return matched


def targets_of(routes: Iterable[RouteSpec]) -> list[TargetSpec]:
    """Targets of the matched routes, without repeats (first occurrence wins)."""
    seen: set[tuple[str, str]] = set()
    targets: list[TargetSpec] = []
    for route in routes:
        for target in route.targets:
            if (target.type, target.destination) not in seen:
                seen.add((target.type, target.destination))
                targets.append(target)
    return targets


@dataclass(frozen=True)
class Window:
    """A maintenance window as routing sees it."""

    id: int
    starts_at: datetime
    ends_at: datetime
    matchers: tuple[Matcher, ...]
    reason: str


def active_window(
    windows: Iterable[Window], labels: Mapping[str, str], now: datetime
) -> Window | None:
    for window in windows:
        if window.starts_at <= now < window.ends_at and matches_all(window.matchers, labels):
            return window
    return None


def apply_maintenance(
    targets: Sequence[TargetSpec], fallback_slack: str | None
) -> tuple[list[TargetSpec], str | None]:
    """Drop PagerDuty pages; return the remaining targets and the Slack destination for the note.

    The note goes to `fallback_slack` when configured, else to the first Slack target of the
    route; with neither, the page is suppressed without a note.
    """
    kept = [t for t in targets if t.type != "pagerduty"]
    if len(kept) == len(targets):
        return kept, None
    slack_targets = [t.destination for t in kept if t.type == "slack"]
    note_to = fallback_slack or (slack_targets[0] if slack_targets else None)
    if note_to is not None and note_to not in slack_targets:
        kept.append(TargetSpec("slack", note_to))
    return kept, note_to
