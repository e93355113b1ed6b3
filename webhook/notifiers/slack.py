"""Slack incoming webhooks: POST the stored Block Kit message to the destination's URL.

Slack answers 200 `ok`, or a status with a plain-text error code (`invalid_payload`,
`no_service`, `channel_not_found`, ...). Slack has no idempotency key: a message is sent
at most once successfully because the outbox marks it sent before it is claimed again.
"""

from collections.abc import Mapping

import aiohttp

from webhook.notifiers.base import (
    TRANSPORT_ERRORS,
    classify_response,
    transport_failure,
    unknown_destination,
)
from webhook.outbox import Delivery, Outcome
from webhook.targets import SlackDestination


class SlackNotifier:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        destinations: Mapping[str, SlackDestination],
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
        url = destination.webhook_url.get_secret_value()
        try:
            async with self.session.post(
                url,
                json=dict(delivery.payload),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                text = await response.text(errors="replace")
                return classify_response(
                    response.status, response.headers, text[:200], secrets=[url]
                )
        except TRANSPORT_ERRORS as exc:
            return transport_failure(exc, self.timeout)
