"""Times as the operator reads and writes them: shown in their time zone (`--tz`, default the
machine's), sent to the service as RFC 3339 UTC."""

import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_AGO = re.compile(
    r"^(\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hrs?|hours?|d|days?|w|weeks?)(\s+ago)?$"
)
_IN = re.compile(r"^(?:\+|in\s+)(\d+)\s*(m|min|minutes?|h|hours?|d|days?)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def zone(name: str | None) -> tzinfo:
    if not name or name == "local":
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from None


def _unit(text: str) -> int:
    return _SECONDS["m" if text.startswith("mi") or text == "m" else text[0]]


def since(text: str, tz: tzinfo) -> str:
    """`8h`, `8 hours ago`, `30m`, `2 days ago` (sent as a duration) or a time (sent as UTC)."""
    cleaned = text.strip().lower()
    match = _AGO.match(cleaned)
    if match:
        seconds = int(match[1]) * _unit(match[2])
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds % size == 0:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"
    return moment(text, tz).isoformat().replace("+00:00", "Z")


def moment(text: str, tz: tzinfo, now: datetime | None = None) -> datetime:
    """`now`, `+2h` / `in 30 minutes`, or ISO 8601 (without a zone: in `tz`); UTC."""
    now = now or datetime.now(UTC)
    cleaned = text.strip().lower()
    if cleaned == "now":
        return now
    match = _IN.match(cleaned)
    if match:
        return now + timedelta(seconds=int(match[1]) * _unit(match[2]))
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: use now, +2h, in 30 minutes or "
            "2026-11-27T09:00 (in --tz unless it names its zone)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def duration(text: str) -> timedelta:
    match = _AGO.match(text.strip().lower())
    if not match or match[3]:
        raise ValueError(f"cannot read {text!r} as a duration: use 30m, 2h, 1d")
    return timedelta(seconds=int(match[1]) * _unit(match[2]))


def local(value: str | None, tz: tzinfo, *, seconds: bool = False) -> str:
    """An RFC 3339 time from the API, in the operator's zone."""
    if not value:
        return "-"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    shown = parsed.astimezone(tz)
    return shown.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
