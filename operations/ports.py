"""The narrow read interfaces the operator API works through, wired by the app factory.

The operator part never imports the exporter or the webhook: the app factory puts objects that
satisfy these Protocols under the AppKeys below (the exporter's runner, the webhook's reader).
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web


class ExporterView(Protocol):
    """The exporter's latest snapshots: per-account facts and per-source overviews."""

    def facts(self, source: str) -> Mapping[str, Any] | None:
        """Per product account id (zendesk, stripe, usage, health); None before a refresh."""
        ...

    def overview(self, source: str) -> Mapping[str, Any] | None:
        """The source's totals and short lists (see docs/operator.md)."""
        ...

    def freshness(self) -> Sequence[Mapping[str, Any]]:
        """Per enabled source: source, up, last_success (Unix time), last_duration, interval."""
        ...


class AlertBook(Protocol):
    """The webhook's alerts, maintenance windows and outbox, as its API shows them."""

    async def alerts(
        self, now: datetime, *, state: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Alerts as GET /api/v1/alerts answers them (newest first), optionally only those in
        `state` and/or first received at or after `since`."""
        ...

    async def maintenance(self, now: datetime, include_past: bool) -> list[dict[str, Any]]:
        """Maintenance windows as GET /api/v1/maintenance answers them."""
        ...

    async def health(self, now: datetime) -> dict[str, Any]:
        """Open and overdue alerts, outbox depth, dead letters, journal backlog."""
        ...

    def slack_destinations(self) -> list[str]: ...

    async def post_slack(self, destination: str, text: str, key: str, now: datetime) -> int:
        """Queue a Slack message in the outbox (sent by the dispatcher with its retries and
        rate limits); `key` makes it idempotent. Returns the delivery id."""
        ...


EXPORTER_VIEW_KEY: web.AppKey[ExporterView] = web.AppKey("operator_exporter_view")
ALERT_BOOK_KEY: web.AppKey[AlertBook] = web.AppKey("operator_alert_book")
