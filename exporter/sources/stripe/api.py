"""A thin wrapper over stripe-python's async client: one page per call, retries, stats.

Requests go through `StripeClient.raw_request_async` (the SDK's auth, headers, API version and
error mapping over its async httpx client) and return the API's own JSON dicts, which the pure
MRR functions take as they are.

Pagination is driven here page by page (not `auto_paging_iter`) so each page gets its own
retries (429 honours Retry-After, 5xx back off) and a failure mid-listing retries that page
instead of starting over. The SDK's own retries are off (it does not honour Retry-After).
"""

from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import stripe

from exporter.config import StripeConfig
from exporter.stats import UpstreamStats
from tensafe_ops.http import RateLimiter, UpstreamError, parse_retry_after, with_retries
from tensafe_ops.log import get_logger

log = get_logger("tensafe_ops.exporter.stripe")

SOURCE = "stripe"
PAGE_SIZE = 100

Obj = dict[str, Any]


class CursorExpiredError(UpstreamError):
    """The Events cursor is gone (events are kept 30 days): a full resync is needed."""


class _CountingHTTPXClient(stripe.HTTPXClient):
    """Records the status code of every HTTP response (retries and errors included)."""

    def __init__(self, stats: UpstreamStats, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.stats = stats
        self.responses = 0

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        content, status, response_headers = await super().request_async(
            method, url, headers, post_data
        )
        self.responses += 1
        self.stats.record_request(SOURCE, status)
        return content, status, response_headers


def _upstream_error(exc: stripe.StripeError) -> UpstreamError:  # noqa: PLR0911
    """Map an SDK error to a bounded kind; the message never repeats Stripe's text or the key."""
    status = exc.http_status
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return UpstreamError("auth", f"Stripe rejected the API key ({status})", status=status)
    if isinstance(exc, stripe.RateLimitError):
        retry_after = (exc.headers or {}).get("Retry-After")
        return UpstreamError(
            "rate_limited",
            "Stripe rate limited the request (429)",
            status=429,
            retry_after=parse_retry_after(retry_after, default=1.0),
        )
    if isinstance(exc, stripe.APIConnectionError):
        if isinstance(exc.__cause__, httpx.TimeoutException):
            return UpstreamError("timeout", "Stripe did not answer in time")
        return UpstreamError("network", "could not reach Stripe")
    if isinstance(exc, stripe.InvalidRequestError):
        if exc.code == "resource_missing" and exc.param in ("starting_after", "ending_before"):
            return CursorExpiredError(
                "client_error", "the Events cursor has expired", status=status
            )
        return UpstreamError(
            "client_error", f"Stripe refused the request ({status})", status=status
        )
    if status is None or status < 400:
        return UpstreamError("malformed", "Stripe answered with a body that is not JSON")
    if status >= 500:
        return UpstreamError("server_error", f"Stripe server error ({status})", status=status)
    return UpstreamError("client_error", f"Stripe refused the request ({status})", status=status)


class StripeApi:
    """Listing and retrieval through the SDK, returning the API's own JSON dicts."""

    def __init__(self, cfg: StripeConfig, stats: UpstreamStats) -> None:
        self.cfg = cfg
        self.stats = stats
        self.http = _CountingHTTPXClient(stats, cfg.request_timeout)
        self.client = stripe.StripeClient(
            cfg.api_key.get_secret_value(),
            base_addresses={"api": cfg.base_url},
            http_client=self.http,
            max_network_retries=0,
        )
        self.limiter = RateLimiter(cfg.rate_limit_per_minute)

    @property
    def responses(self) -> int:
        """HTTP responses received so far (benchmarks and tests read it)."""
        return self.http.responses

    async def _once(self, path: str, params: Mapping[str, Any]) -> Obj:
        await self.limiter.acquire()
        try:
            # raw_request: the SDK's transport, auth and error mapping, without turning every
            # object into a StripeObject (that alone costs ~15 s of CPU for 10k subscriptions)
            response = await self.client.raw_request_async("get", path, **params)
        except stripe.StripeError as exc:
            error = _upstream_error(exc)
            self.stats.record_error(SOURCE, error.kind)
            raise error from None
        if not isinstance(response.data, dict):
            self.stats.record_error(SOURCE, "malformed")
            raise UpstreamError("malformed", "Stripe answered with an unexpected body")
        return response.data

    async def call(
        self, resource: str, params: Mapping[str, Any], object_id: str | None = None
    ) -> Obj:
        """GET /v1/<resource>[/<id>] with retries: Retry-After on 429, backoff on 5xx."""
        path = f"/v1/{resource}"
        if object_id is not None:
            path += "/" + quote(object_id, safe="")

        def on_retry(error: UpstreamError, delay: float) -> None:
            if error.kind == "rate_limited":
                self.limiter.penalize(delay)
            log.warning("stripe_retry", resource=resource, kind=error.kind, delay=round(delay, 2))

        async def attempt() -> Obj:
            return await self._once(path, params)

        return await with_retries(
            attempt,
            max_retries=self.cfg.max_retries,
            on_retry=on_retry,
            backoff_base=0.5,
            backoff_cap=30.0,
        )

    async def pages(self, resource: str, params: Mapping[str, Any]) -> AsyncIterator[list[Obj]]:
        """A listing (newest first) one page at a time, following `starting_after`.

        Large listings (10,000 subscriptions) are consumed page by page so that only the
        slimmed objects stay in memory, never every raw object at once.
        """
        cursor: str | None = None
        while True:
            page_params = {**params, "limit": PAGE_SIZE}
            if cursor is not None:
                page_params["starting_after"] = cursor
            page = await self.call(resource, page_params)
            data = list(page.get("data") or [])
            more = bool(page.get("has_more")) and bool(data)
            del page
            if data:
                cursor = str(data[-1]["id"])
                yield data
            if not more:
                return

    async def list_all(self, resource: str, params: Mapping[str, Any]) -> list[Obj]:
        """Every object of a listing (newest first): for short listings only."""
        return [obj async for page in self.pages(resource, params) for obj in page]

    async def events_after(self, cursor: str, types: list[str]) -> list[Obj]:
        """Events newer than `cursor`, oldest first (pages walk forward with `ending_before`)."""
        events: list[Obj] = []
        while True:
            params = {"limit": PAGE_SIZE, "ending_before": cursor, "types": types}
            page = await self.call("events", params)
            data = list(page.get("data") or [])
            events.extend(reversed(data))
            if not page.get("has_more") or not data:
                return events
            cursor = str(data[0]["id"])

    async def aclose(self) -> None:
        await self.http.close_async()  # type: ignore[no-untyped-call]
