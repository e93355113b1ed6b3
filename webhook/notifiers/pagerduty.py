"""PagerDuty Events API v2: POST the stored event with the destination's routing key.

The routing key is filled in here, from the configuration, so it never has to sit in the
outbox. PagerDuty answers 202 with the `dedup_key`; a repeated trigger with the same
`dedup_key` updates the open alert instead of opening a second one, which makes a resend
after a lost response harmless. 400 (invalid event) is permanent; 429 and 5xx are retried.
"""

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from webhook.notifiers.base import (
    TRANSPORT_ERRORS,
    classify_response,
    transport_failure,
    unknown_destination,
)
from webhook.outbox import Delivery, Outcome
from webhook.targets import PagerDutyDestination


def _error_text(body: str) -> str:
    """PagerDuty's error JSON is {"status", "message", "errors": [...]}; keep what it says."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200]
    if not isinstance(data, dict):
        return body[:200]
    parts = [str(data.get("message", "")), *map(str, data.get("errors") or [])]
    return "; ".join(part for part in parts if part)


class PagerDutyNotifier:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        destinations: Mapping[str, PagerDutyDestination],
        *,
        timeout: float,
    ) -> None:
        self.session = session
        self.destinations = destinations
        self.timeout = timeout

    async def send(self, delivery: Delivery) -> Outcome:
        destination = self.destinations.get(delivery.destination)
        if destination is None:
            return unknown_destination(delivery)
        routing_key = destination.routing_key.get_secret_value()
        event = {**delivery.payload, "routing_key": routing_key}
        try:
            async with self.session.post(
                destination.events_url,
                json=event,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                body = await response.text(errors="replace")
                answer: dict[str, Any] = {}
                if 200 <= response.status < 300:
                    try:
                        parsed = json.loads(body)
                    except ValueError:
                        parsed = None  # accepted all the same: 202 is what counts
                    if isinstance(parsed, dict) and "dedup_key" in parsed:
                        answer = {"dedup_key": parsed["dedup_key"]}
                return classify_response(
                    response.status,
                    response.headers,
                    _error_text(body),
                    secrets=[routing_key],
                    response=answer,
                )
        except TRANSPORT_ERRORS as exc:
            return transport_failure(exc, self.timeout)
