"""Alertmanager webhook body (payload version "4"), owned locally like jiralert does.

Strict on the fields every Alertmanager since v0.21 sends (missing or mistyped -> 400 naming the
field); lenient on fields newer releases add (`notification_reason` v0.32, `routeLabels` v0.34)
and on anything unknown, which is kept but ignored.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from webhook.timebounds import BOUNDS, EARLIEST, LATEST, in_bounds

Status = Literal["firing", "resolved"]
KV = dict[str, str]
Fingerprint = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
_NO_OFFSET = timedelta(0)
_ZERO_TIME_YEAR = 1  # Go's zero time 0001-01-01T00:00:00Z: "no end yet" for firing alerts
_SAFE_YEARS = (EARLIEST.year, LATEST.year)
"""Strictly between these years a time is inside the bounds whatever its zone."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, strict=False)


class Alert(_Lenient):
    status: Status
    labels: KV
    annotations: KV
    # Strict: an RFC 3339 string with a zone, not epoch numbers. No Python validators here:
    # they ran 20 times per 10-alert notification, 40% of parsing (see parse_notification).
    starts_at: AwareDatetime = Field(alias="startsAt", strict=True)
    ends_at: AwareDatetime = Field(alias="endsAt", strict=True)
    generator_url: str = Field(alias="generatorURL")
    fingerprint: Fingerprint

    @property
    def end(self) -> datetime | None:
        """The resolve time, or None for Go's zero time (firing alerts)."""
        return None if self.ends_at.year == _ZERO_TIME_YEAR else self.ends_at


class Notification(_Lenient):
    receiver: str
    status: Status
    alerts: list[Alert]
    group_labels: KV = Field(alias="groupLabels")
    common_labels: KV = Field(alias="commonLabels")
    common_annotations: KV = Field(alias="commonAnnotations")
    external_url: str = Field(alias="externalURL")
    version: Literal["4"]
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(alias="truncatedAlerts", ge=0)
    notification_reason: str | None = None
    route_labels: KV = Field(default_factory=dict, alias="routeLabels")


class PayloadError(ValueError):
    """A malformed notification; `field` names the first bad field (e.g. `alerts.0.startsAt`)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def parse_notification(body: bytes) -> Notification:
    """Validate a raw JSON body; raise PayloadError naming the first offending field."""
    if b"\\u0000" in body:
        # Valid JSON, but no label or annotation has a reason to hold NUL and PostgreSQL
        # text cannot store it: refuse it as bad input rather than fail the write (5xx).
        raise PayloadError("<body>", "NUL characters (\\u0000) are not allowed")
    try:
        notification = Notification.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "<body>"
        if first["type"] == "json_invalid":
            where = "<body>"
        raise PayloadError(where, first["msg"]) from None
    zones = set()
    for index, alert in enumerate(notification.alerts):
        # Stored times must read back (webhook.timebounds); endsAt may be Go's zero time.
        # The year alone settles all but the edge years (a zone shifts by less than a day):
        # comparing aware datetimes costs as much as the validation did (bench/README.md).
        starts, ends = alert.starts_at, alert.ends_at
        if not _SAFE_YEARS[0] < starts.year < _SAFE_YEARS[1] and not in_bounds(starts):
            raise PayloadError(f"alerts.{index}.startsAt", f"must lie {BOUNDS}")
        end_year = ends.year
        if (
            end_year != _ZERO_TIME_YEAR
            and not _SAFE_YEARS[0] < end_year < _SAFE_YEARS[1]
            and not in_bounds(ends)
        ):
            raise PayloadError(f"alerts.{index}.endsAt", f"must lie {BOUNDS}")
        zones.add(starts.tzinfo)
        zones.add(ends.tzinfo)
    if all(zone is not None and zone.utcoffset(None) == _NO_OFFSET for zone in zones):
        return notification  # what Alertmanager sends: times in UTC ("Z")
    return notification.model_copy(
        update={"alerts": [_in_utc(index, a) for index, a in enumerate(notification.alerts)]}
    )


def _in_utc(index: int, alert: Alert) -> Alert:
    """Times with another offset, moved to UTC (stored and compared as UTC everywhere)."""
    moved = {}
    for name, alias in (("starts_at", "startsAt"), ("ends_at", "endsAt")):
        try:
            moved[name] = getattr(alert, name).astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            raise PayloadError(f"alerts.{index}.{alias}", "timestamp out of range") from None
    return alert.model_copy(update=moved)
