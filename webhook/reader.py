"""What the operator API may read and do through the webhook: alerts and maintenance windows as
the management API shows them, the webhook's own health, and Slack messages through the outbox
(so they get the dispatcher's rate limits, retries and dead letters). It satisfies
`operations.ports.AlertBook` structurally; the app factory wires it."""

from collections.abc import Coroutine
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from tensafe_ops.storage import within
from webhook.handlers import Webhook
from webhook.intake import NewDelivery
from webhook.messages import SLACK_TEXT_MAX, clip
from webhook.serialize import alert_json, maintenance_json
from webhook.statements import enqueue, ts
from webhook.tables import alerts, deliveries

NO_ALERT_ID = 0
"""`alert_id` of a message that is about no alert (a daily summary, a handoff)."""
SLACK_BLOCKS_MAX = 50
ALERTS_MAX = 1000
T = TypeVar("T")


def slack_text_message(text: str, channel: str | None) -> dict[str, Any]:
    """A Slack message of mrkdwn `text`: one section per paragraph group, each within Slack's
    3,000-character section limit, at most 50 blocks."""
    blocks: list[str] = []
    current = ""
    for paragraph in text.split("\n\n"):
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if len(candidate) <= SLACK_TEXT_MAX:
            current = candidate
            continue
        if current:
            blocks.append(current)
        current = clip(paragraph, SLACK_TEXT_MAX)
    if current:
        blocks.append(current)
    message: dict[str, Any] = {
        "text": clip(text.split("\n", 1)[0], SLACK_TEXT_MAX),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": block}}
            for block in blocks[:SLACK_BLOCKS_MAX]
        ],
    }
    if channel is not None:
        message["channel"] = channel
    return message


class WebhookReader:
    """Every database call is bounded by `store_timeout`, the operator API's (its
    `operator.store_timeout`, not the webhook's: TimeoutError, and the operator API answers
    503), and runs in a task of its own like the webhook's handlers' (`Webhook.shielded`);
    the webhook's shutdown waits for those tasks."""

    def __init__(self, webhook: Webhook, store_timeout: float) -> None:
        self.webhook = webhook
        self.store_timeout = store_timeout

    async def _bounded(self, work: Coroutine[Any, Any, T]) -> T:
        return await within(work, self.store_timeout, self.webhook.writes)

    async def alerts(
        self, now: datetime, *, state: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        query = sa.select(alerts).order_by(alerts.c.id.desc()).limit(ALERTS_MAX)
        if state is not None:
            query = query.where(alerts.c.state == state)
        if since is not None:
            query = query.where(alerts.c.first_received_at >= ts(since))
        rows = await self._bounded(self._rows(query))
        return [alert_json(row, now) for row in rows]

    async def _rows(self, query: sa.Select[Any]) -> list[dict[str, Any]]:
        async with self.webhook.store.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings()]

    async def maintenance(self, now: datetime, include_past: bool) -> list[dict[str, Any]]:
        rows = await self._bounded(self.webhook.store.list_maintenance(now, include_past))
        return [maintenance_json(row) for row in rows]

    async def health(self, now: datetime) -> dict[str, Any]:
        """Read live (the metrics' gauges are only as fresh as the last sweep)."""
        gauges = await self._bounded(self.webhook.store.gauges(now))
        backlog = await self._bounded(self.webhook.journal.backlog(now))
        open_alerts: dict[str, int] = {}
        unacknowledged: dict[str, int] = {}
        for (severity, acknowledged), count in gauges.open_alerts.items():
            open_alerts[severity] = open_alerts.get(severity, 0) + count
            if not acknowledged:
                unacknowledged[severity] = unacknowledged.get(severity, 0) + count
        oldest = backlog.oldest_received_at
        return {
            "open_alerts": open_alerts,
            "unacknowledged": unacknowledged,
            "overdue": dict(gauges.overdue),
            "outbox_pending": dict(gauges.outbox_depth),
            "dead_letters": dict(gauges.dead_letters),
            "journal_pending": backlog.pending,
            "journal_failed": backlog.failed,
            "journal_oldest_seconds": None if oldest is None else (now - oldest).total_seconds(),
        }

    def slack_destinations(self) -> list[str]:
        return sorted(self.webhook.cfg.destinations.slack)

    async def post_slack(self, destination: str, text: str, key: str, now: datetime) -> int:
        slack = self.webhook.cfg.destinations.slack.get(destination)
        if slack is None:
            raise KeyError(destination)
        payload = slack_text_message(text, slack.channel)
        delivery = NewDelivery("slack", destination, "message", payload, key)
        return await self._bounded(self._enqueue(delivery, key, now))

    async def _enqueue(self, delivery: NewDelivery, key: str, now: datetime) -> int:
        async with self.webhook.store.writing() as conn:
            await enqueue(conn, [(NO_ALERT_ID, delivery)], now)
            found = await conn.execute(
                sa.select(deliveries.c.id).where(deliveries.c.idempotency_key == key)
            )
            delivery_id: int = found.scalar_one()
        return delivery_id
