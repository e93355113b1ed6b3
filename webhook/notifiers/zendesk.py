"""Zendesk Create Ticket: POST /api/v2/tickets with an `Idempotency-Key`.

The key is the delivery's, so a resend after a lost response (or a crash between sending
and recording) replays the original answer instead of creating a second ticket; Zendesk
keeps keys for about two hours. The same key with a different body is a permanent 400
(`IdempotentRequestError`). Auth is an API token: basic `{email}/token:{token}`.
"""

import base64
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
from webhook.targets import ZendeskDestination


def _error_text(body: str) -> str:
    """Zendesk errors are {"error": "..."} or {"error": {"title", "message"}} with optional
    "description" and "details"; keep the short parts."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200]
    if not isinstance(data, dict):
        return body[:200]
    error = data.get("error")
    if isinstance(error, dict):
        error = ": ".join(str(error[k]) for k in ("title", "message") if error.get(k))
    parts = [str(error or ""), str(data.get("description") or "")]
    if data.get("details"):
        parts.append(json.dumps(data["details"])[:200])
    return "; ".join(part for part in parts if part)


class ZendeskNotifier:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        destinations: Mapping[str, ZendeskDestination],
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
        token = destination.token.get_secret_value()
        url = destination.base_url.rstrip("/") + "/api/v2/tickets"
        try:
            async with self.session.post(
                url,
                json=dict(delivery.payload),
                headers={
                    "Idempotency-Key": delivery.idempotency_key,
                    "Authorization": _basic_auth(f"{destination.email}/token", token),
                },
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                body = await response.text(errors="replace")
                answer: dict[str, Any] = {}
                if 200 <= response.status < 300:
                    answer = _ticket_reference(body, response.headers)
                return classify_response(
                    response.status,
                    response.headers,
                    _error_text(body),
                    secrets=[token],
                    response=answer,
                )
        except TRANSPORT_ERRORS as exc:
            return transport_failure(exc, self.timeout)


def _basic_auth(login: str, password: str) -> str:
    credentials = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
    return f"Basic {credentials}"


def _ticket_reference(body: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """The created ticket's id and whether Zendesk replayed an earlier answer (`hit`)."""
    answer: dict[str, Any] = {}
    lookup = headers.get("x-idempotency-lookup")
    if lookup:
        answer["idempotency_lookup"] = lookup
    try:
        data = json.loads(body)
    except ValueError:
        return answer  # created all the same: 201 is what counts
    ticket = data.get("ticket") if isinstance(data, dict) else None
    if isinstance(ticket, dict) and "id" in ticket:
        answer["ticket_id"] = ticket["id"]
    return answer
