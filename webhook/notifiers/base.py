"""The notifier contract and the HTTP-response classification every notifier shares.

2xx is success; 429 is retryable after `Retry-After`; 5xx, timeouts and connection errors
are retryable; every other 4xx is permanent (the delivery is dead-lettered with the error
kept). Errors name the status and the destination's own error text, never a credential.
"""

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import aiohttp

from tensafe_ops.http import parse_retry_after
from webhook.outbox import Delivery, Outcome

ERROR_TEXT_MAX = 500


class Notifier(Protocol):
    async def send(self, delivery: Delivery) -> Outcome:
        """Send one delivery; never raises for upstream failures (they are Outcomes)."""
        ...


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced, as a last guard against echoed credentials."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def unknown_destination(delivery: Delivery) -> Outcome:
    """A delivery naming a destination that is not configured (any more): permanent until
    the configuration is fixed and the dead letter retried."""
    return Outcome(
        ok=False, error=f"no {delivery.target} destination named {delivery.destination!r}"
    )


def classify_response(
    status: int,
    headers: Mapping[str, str],
    error_text: str,
    *,
    secrets: Iterable[str],
    response: Mapping[str, Any] | None = None,
) -> Outcome:
    """The Outcome of one HTTP response; `error_text` is the destination's error message."""
    if 200 <= status < 300:
        return Outcome(ok=True, status=status, response=response or {})
    error = redact(f"HTTP {status}: {error_text}".strip(), secrets)[:ERROR_TEXT_MAX]
    if status == 429:
        retry_after = headers.get("Retry-After")
        return Outcome(
            ok=False,
            retryable=True,
            retry_after=parse_retry_after(retry_after) if retry_after else None,
            error=error,
            status=status,
        )
    return Outcome(ok=False, retryable=status >= 500, error=error, status=status)


def transport_failure(exc: BaseException, timeout: float) -> Outcome:
    """Timeouts and connection errors are retryable; a malformed URL is not. Only the
    exception's class is kept: aiohttp's messages can contain the request URL (a Slack
    webhook's secret path)."""
    if isinstance(exc, aiohttp.InvalidURL):
        return Outcome(ok=False, error="the destination's URL is invalid (check the config)")
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return Outcome(ok=False, retryable=True, error=f"timeout after {timeout:g}s")
    return Outcome(ok=False, retryable=True, error=f"connection failed ({type(exc).__name__})")


TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
"""What a request may raise before a response arrives (aiohttp.InvalidURL is a ClientError)."""
