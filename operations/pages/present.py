"""How the pages write numbers and times: pure functions, also registered as template filters.

`countdown` writes exactly what the pages' script writes (static/pages.js), so the server's text
and the live one agree at `taken_at`.
"""

import math
from datetime import UTC, datetime

from operations.views import counted

BAND_WORDS = {
    "healthy": "OK",
    "warning": "Warning",
    "critical": "Critical",
    "unknown": "No data",
    "info": "Info",
    "at_risk": "At risk",
    "watch": "Watch",
}
STATE_WORDS = {"done": "Done", "failed": "Failed", "open": "To do", "unknown": "Unknown"}


def span(seconds: float) -> str:
    """A duration for people: 42s, 14m 05s, 3h 07m, 2d 04h (rounded down)."""
    s = max(0, math.floor(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def countdown(seconds_left: float) -> str:
    """Time left to respond, or how long ago that time passed."""
    return (
        f"{span(seconds_left)} left" if seconds_left >= 0 else f"overdue by {span(-seconds_left)}"
    )


def signed_seconds_left(alert: dict[str, object]) -> float | None:
    """Seconds to the alert's respond-by (negative: overdue); None when nobody waits on it."""
    left, overdue = alert.get("seconds_left"), alert.get("overdue_seconds")
    if isinstance(left, int | float):
        return float(left)
    if isinstance(overdue, int | float):
        return -float(overdue)
    return None


def money(amount: float | None, currency: str | None) -> str:
    if amount is None:
        return "unknown"
    code = (currency or "usd").upper()
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(code)
    # Cents only where they say something: $39.50, but $78 and $3,499 side by side in a column.
    whole = abs(amount) >= 100 or round(amount, 2) == round(amount)
    text = f"{abs(amount):,.0f}" if whole else f"{abs(amount):,.2f}"
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"


def short_money(amount: float, currency: str | None) -> str:
    """Axis labels: $12.5k, $1.2M."""
    code = (currency or "usd").upper()
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(code, "")
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(amount) >= size:
            return f"{symbol}{amount / size:.3g}{suffix}"
    return f"{symbol}{amount:.0f}"


def clock_time(text: str | None, today: str | None = None) -> str:
    """An RFC 3339 time as `YYYY-MM-DD HH:MM:SS UTC`, or `HH:MM:SS UTC` when it falls on the UTC
    day of `today` (the time the page's data was taken): a table of today's events stays narrow."""
    moment = parse(text)
    if moment is None:
        return "never"
    reference = parse(today)
    if reference is not None and reference.date() == moment.date():
        return moment.strftime("%H:%M:%S UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def age(text: str | None, now: datetime) -> float | None:
    moment = parse(text)
    return None if moment is None else max(0.0, (now - moment).total_seconds())


def band_word(band: str | None) -> str:
    return BAND_WORDS.get(band or "unknown", (band or "unknown").replace("_", " "))


CUSTOMER_BANDS = {"at_risk": "At risk", "watch": "Watch", "healthy": "Healthy"}


def customer_band(band: str | None) -> str:
    return CUSTOMER_BANDS.get(band or "", "Not scored")


def state_word(state: str) -> str:
    return STATE_WORDS.get(state, state)


def severity_class(severity: str | None) -> str:
    return {"critical": "crit", "warning": "warn", "info": "info"}.get(severity or "", "unknown")


def priority_name(priority: str | None) -> str:
    return (priority or "none").upper()


def prometheus_state(status: dict[str, object]) -> str:
    if not status.get("configured"):
        return "not configured"
    if status.get("reachable"):
        return "reachable"
    return f"unreachable ({status.get('error') or 'no answer'})"


CHECK_NAMES = {
    "healthy": "Health not at risk",
    "no_breaching_tickets": "No ticket breaching its SLA",
    "uptime_sla": "Uptime within the SLA",
    "maintenance_communicated": "Maintenance communicated",
}


def check_name(key: str) -> str:
    return CHECK_NAMES.get(key, key.replace("_", " "))


def yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


FILTERS = {
    "span": span,
    "countdown": countdown,
    "seconds_left": signed_seconds_left,
    "money": money,
    "counted": counted,
    "clock_time": clock_time,
    "band_word": band_word,
    "customer_band": customer_band,
    "state_word": state_word,
    "severity_class": severity_class,
    "priority_name": priority_name,
    "prometheus_state": prometheus_state,
    "check_name": check_name,
    "yes_no": yes_no,
}
