"""Fake Slack incoming webhooks: `POST /services/T…/B…/<secret>`, answered as Slack does.

- 200 `ok` for a valid message (recorded in the `SlackInbox`);
- 400 `invalid_payload` for a body that is not a JSON object, has neither `text` nor
  `blocks`, or breaks a Block Kit limit (<= 50 blocks, header <= 150 chars, section text
  <= 3000, <= 10 fields of <= 2000, context <= 10 elements, actions <= 25 elements,
  button text <= 75, urls <= 3000, block_id <= 255);
- 404 `no_service` for an unknown webhook, 404 `channel_not_found` for an unknown
  channel override (when the fake knows its channels), 410 `channel_is_archived`;
- 429 `rate_limited` with `Retry-After` when one webhook gets more than `per_second`
  messages within a second;
- the shared fault middleware (errors as Slack's plain-text codes).
"""

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tensafe_ops.sandbox.faults import Faults, fault_middleware
from tensafe_ops.sandbox.received import inspectable

_ERROR_CODES = {429: "rate_limited", 500: "rollup_error", 503: "service_unavailable"}
_TEXT_TYPES = {"plain_text", "mrkdwn"}


@dataclass(frozen=True)
class ReceivedMessage:
    webhook: str
    """The webhook's path after /services/ ("T…/B…/secret")."""
    payload: dict[str, Any]
    at: float


@dataclass
class SlackInbox:
    """What the fake workspace knows and what it has received."""

    webhooks: set[str]
    channels: set[str] | None = None
    """Channel names a `channel` override may use; None accepts any."""
    archived: set[str] = field(default_factory=set)
    """Webhooks whose channel is archived (410)."""
    per_second: int = 1
    messages: list[ReceivedMessage] = field(default_factory=list)
    rejected: list[tuple[str, int, str]] = field(default_factory=list)
    """(webhook, status, error code) of every refused message."""
    recent: dict[str, deque[float]] = field(default_factory=dict)

    def for_webhook(self, webhook: str) -> list[dict[str, Any]]:
        return [m.payload for m in self.messages if m.webhook == webhook]


SLACK_INBOX_KEY = web.AppKey("slack_inbox", SlackInbox)


def _text_error(obj: Any, where: str, limit: int, *, plain_only: bool = False) -> str | None:
    if not isinstance(obj, dict) or obj.get("type") not in _TEXT_TYPES:
        return f"{where} must be a text object"
    if plain_only and obj["type"] != "plain_text":
        return f"{where} must be plain_text"
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return f"{where}.text must be a non-empty string"
    if len(text) > limit:
        return f"{where}.text is longer than {limit} characters"
    return None


def _element_error(element: Any, where: str) -> str | None:
    if not isinstance(element, dict):
        return f"{where} must be an object"
    if element.get("type") == "button":
        error = _text_error(element.get("text"), f"{where}.text", 75, plain_only=True)
        if error:
            return error
        url = element.get("url")
        if url is not None and (not isinstance(url, str) or len(url) > 3000):
            return f"{where}.url must be a string of at most 3000 characters"
        return None
    return f"{where} has an unsupported type"


def _header_error(block: dict[str, Any], where: str) -> str | None:
    return _text_error(block.get("text"), f"{where}.text", 150, plain_only=True)


def _section_error(block: dict[str, Any], where: str) -> str | None:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        return f"{where} needs text or fields"
    if text is not None and (error := _text_error(text, f"{where}.text", 3000)):
        return error
    if fields is None:
        return None
    if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
        return f"{where}.fields must hold 1 to 10 items"
    for i, item in enumerate(fields):
        if error := _text_error(item, f"{where}.fields[{i}]", 2000):
            return error
    return None


def _context_error(block: dict[str, Any], where: str) -> str | None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
        return f"{where}.elements must hold 1 to 10 items"
    for i, item in enumerate(elements):
        if error := _text_error(item, f"{where}.elements[{i}]", 2000):
            return error
    return None


def _actions_error(block: dict[str, Any], where: str) -> str | None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
        return f"{where}.elements must hold 1 to 25 items"
    for i, item in enumerate(elements):
        if error := _element_error(item, f"{where}.elements[{i}]"):
            return error
    return None


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str], str | None]] = {
    "header": _header_error,
    "section": _section_error,
    "context": _context_error,
    "actions": _actions_error,
    "divider": lambda _block, _where: None,
}


def _block_error(block: Any, where: str) -> str | None:
    if not isinstance(block, dict) or block.get("type") not in _BLOCK_CHECKS:
        return f"{where} has an unknown or unsupported type"
    block_id = block.get("block_id")
    if block_id is not None and (not isinstance(block_id, str) or len(block_id) > 255):
        return f"{where}.block_id is longer than 255 characters"
    return _BLOCK_CHECKS[block["type"]](block, where)


def message_error(payload: Any) -> str | None:
    """Why Slack would refuse this message body (`invalid_payload`), or None if it is valid."""
    if not isinstance(payload, dict):
        return "the body must be a JSON object"
    text, blocks = payload.get("text"), payload.get("blocks")
    if text is not None and not isinstance(text, str):
        return "text must be a string"
    if blocks is None:
        return None if text else "a message needs text or blocks"
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return "blocks must hold 1 to 50 blocks"
    for i, block in enumerate(blocks):
        if error := _block_error(block, f"blocks[{i}]"):
            return error
    return None


def _slack_error(status: int, message: str) -> web.Response:
    """Slack's webhook errors are plain-text codes, not JSON."""
    return web.Response(status=status, text=_ERROR_CODES.get(status, message))


def make_app(
    faults: Faults,
    *,
    inbox: SlackInbox,
    monotonic: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The fake; every URL `/services/<webhook>` with `<webhook>` in `inbox.webhooks` works."""

    def refusal(webhook: str, payload: Any) -> tuple[int, str] | None:
        """Why Slack refuses this message (status, error code), rate limit aside."""
        if webhook not in inbox.webhooks:
            return 404, "no_service"
        if webhook in inbox.archived:
            return 410, "channel_is_archived"
        if message_error(payload) is not None:
            return 400, "invalid_payload"
        channel = payload.get("channel")
        if channel is not None and inbox.channels is not None and channel not in inbox.channels:
            return 404, "channel_not_found"
        return None

    def over_limit(webhook: str, now: float) -> bool:
        recent = inbox.recent.setdefault(webhook, deque())
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) >= inbox.per_second:
            return True
        recent.append(now)
        return False

    async def post_message(request: web.Request) -> web.Response:
        webhook = request.match_info["webhook"]
        try:
            payload = json.loads(await request.read())
        except ValueError:
            payload = None
        refused = refusal(webhook, payload)
        if refused is not None:
            return refuse(webhook, *refused)
        now = monotonic()
        if over_limit(webhook, now):
            response = refuse(webhook, 429, "rate_limited")
            response.headers["Retry-After"] = "1"
            return response
        inbox.messages.append(ReceivedMessage(webhook, payload, now))
        return web.Response(text="ok")

    def refuse(webhook: str, status: int, code: str) -> web.Response:
        inbox.rejected.append((webhook, status, code))
        return web.Response(status=status, text=code)

    app = web.Application(middlewares=[fault_middleware(faults, _slack_error)])
    inspectable(app)
    app[SLACK_INBOX_KEY] = inbox
    app.router.add_post("/services/{webhook:T[^/]+/B[^/]+/[^/]+}", post_message)
    return app
