"""Slack digests: pure rules and the Block Kit renderer, the clock passed in.

Alerts routed to `slack_digest:<destination>` are not posted one by one; they wait as digest
items and go out together in one message per destination.
Rules:
- a destination's digest is due once its oldest pending item has waited `interval` seconds,
  or, with `at_utc_hour`, at the first such full hour (UTC) after the oldest item arrived;
- a message lists at most `max_alerts` alerts (oldest first); the rest go in further messages;
- the message is the header `N informational alerts in the last <span>`, one section per alert
  (name linked to Prometheus, summary, the labels that matter, started, respond-by or resolved)
  and a context footer; it stays within Block Kit's limits (header <= 150 chars, section text
  <= 3000, <= 50 blocks) whatever the alerts' texts;
- the message's idempotency key names the destination and the exact items it lists, so the
  same items can never become two outbox rows.
"""

import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from webhook.messages import (
    SLACK_HEADER_MAX,
    SLACK_TEXT_MAX,
    clip,
    clip_mrkdwn,
    escape_mrkdwn,
    format_time,
    summary_of,
)
from webhook.outbox import AlertView
from webhook.targets import SLACK_DIGEST_MAX_ALERTS

DIGEST_TARGET = "slack_digest"
DAY = 86400.0
HIDDEN_LABELS = frozenset({"alertname", "severity"})
"""Shown elsewhere in the line (the name) or implied by the digest (the class)."""
# Budgets of one alert's section, in escaped characters: with the icon, markup and times
# (under 100) they add up to less than Slack's 3000.
NAME_MAX = 200
LINK_URL_MAX = 1000
SUMMARY_MAX = 700
LABELS_TEXT_MAX = 900
LABELS_SHOWN_MAX = 8
LABEL_NAME_MAX = 60
LABEL_VALUE_MAX = 100
CONTEXT_TEXT_MAX = 2000
_ICONS = {"firing": ":information_source:", "resolved": ":white_check_mark:"}


def digest_due(
    oldest: datetime, now: datetime, interval: float, at_utc_hour: int | None = None
) -> bool:
    """Whether a destination whose oldest pending item arrived at `oldest` is due at `now`."""
    if at_utc_hour is None:
        return (now - oldest).total_seconds() >= interval
    send_at = oldest.replace(hour=at_utc_hour, minute=0, second=0, microsecond=0)
    if send_at <= oldest:
        send_at += timedelta(days=1)
    return now >= send_at


def schedule_span(interval: float, at_utc_hour: int | None) -> float:
    """The seconds one digest normally covers: the interval, or a day for a daily digest."""
    return DAY if at_utc_hour is not None else interval


def digest_key(destination: str, item_ids: Sequence[int]) -> str:
    """Outbox idempotency key: the destination and the exact items the message lists."""
    ids = sorted(item_ids)
    digest = hashlib.sha256(f"{destination}\n{ids}".encode()).hexdigest()[:16]
    return f"{DIGEST_TARGET}:{destination[:100]}:{ids[0]}-{ids[-1]}:{digest}"


def humanize(seconds: float) -> str:
    """`45 min`, `1 h`, `2 h 30 min` (rounded up to the minute)."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h" if rest == 0 else f"{hours} h {rest} min"


def _link(text: str, url: str) -> str:
    """`text` as a mrkdwn link to `url` when the URL is http(s) and safe to embed."""
    escaped = url.replace("&", "&amp;")
    if not url.startswith(("http://", "https://")) or len(escaped) > LINK_URL_MAX:
        return text
    if any(c in url for c in "|<> "):
        return text
    return f"<{escaped}|{text}>"


def _escaped(text: str, limit: int) -> str:
    return clip_mrkdwn(escape_mrkdwn(text), limit)


def _labels(labels: Mapping[str, str]) -> str:
    """`name=value` of the labels that matter, as code spans, while they fit the budget."""
    shown = [(k, v) for k, v in sorted(labels.items()) if k not in HIDDEN_LABELS]
    parts: list[str] = []
    used = 0
    for name, value in shown[:LABELS_SHOWN_MAX]:
        plain = value.replace("`", "'")  # a backtick would end the code span
        part = f"`{_escaped(name, LABEL_NAME_MAX)}={_escaped(plain, LABEL_VALUE_MAX)}`"
        if used + len(part) + 1 > LABELS_TEXT_MAX - 20:  # room for the "+N more"
            break
        parts.append(part)
        used += len(part) + 1
    if len(parts) < len(shown):
        parts.append(f"+{len(shown) - len(parts)} more")
    return " ".join(parts)


def alert_line(alert: AlertView) -> str:
    """One alert as digest mrkdwn: icon, linked name, summary, labels, times (< 3000 chars)."""
    name = _link(_escaped(alert.alertname or "(no alertname)", NAME_MAX), alert.generator_url)
    summary = _escaped(summary_of(alert), SUMMARY_MAX)
    lines = [f"{_ICONS[alert.status]} *{name}* — {summary}"]
    labels = _labels(alert.labels)
    if labels:
        lines.append(labels)
    times = f"Started {format_time(alert.starts_at)}"
    if alert.status == "resolved" and alert.ends_at is not None:
        times += f" · resolved {format_time(alert.ends_at)}"
    else:
        times += f" · respond by *{format_time(alert.respond_by)}*"
    lines.append(times)
    return clip_mrkdwn("\n".join(lines), SLACK_TEXT_MAX)


def digest_title(alerts: Sequence[AlertView], span_seconds: float) -> str:
    count = len(alerts)
    noun = "informational alert" if all(a.severity == "info" for a in alerts) else "alert"
    plural = "" if count == 1 else "s"
    return clip(f"{count} {noun}{plural} in the last {humanize(span_seconds)}", SLACK_HEADER_MAX)


def digest_message(
    alerts: Sequence[AlertView],
    *,
    span_seconds: float,
    remaining: int,
    channel: str | None,
) -> dict[str, Any]:
    """One Block Kit message listing `alerts` (in the given order): a header, one section per
    alert and a context footer (how many more follow in the next message). `text` is the
    notification fallback: the header and the alert names."""
    if not 1 <= len(alerts) <= SLACK_DIGEST_MAX_ALERTS:
        raise ValueError(f"a digest lists 1 to {SLACK_DIGEST_MAX_ALERTS} alerts")
    title = digest_title(alerts, span_seconds)
    footer = "Oldest first. Acknowledge or review each alert within its respond-by time."
    if remaining > 0:
        footer = f"{remaining} more pending: they follow in the next message. " + footer
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        *(
            {"type": "section", "text": {"type": "mrkdwn", "text": alert_line(alert)}}
            for alert in alerts
        ),
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": clip(footer, CONTEXT_TEXT_MAX)}],
        },
    ]
    names = ", ".join(a.alertname for a in alerts)
    message: dict[str, Any] = {
        "text": clip_mrkdwn(escape_mrkdwn(f"{title}: {names}"), SLACK_TEXT_MAX),
        "blocks": blocks,
    }
    if channel is not None:
        message["channel"] = channel
    return message
