"""zenpy, wrapped: one HTTP request per call, off the event loop, rate limited and retried.

zenpy is synchronous and, on a 429, sleeps `Retry-After` inside its thread. Here a
requests response hook counts every response and turns any non-2xx answer into an
`UpstreamError` before zenpy sees it, so zenpy never sleeps or retries by itself: the
async `RateLimiter` + `with_retries` decide when to call again.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from zenpy import Zenpy
from zenpy.lib.exception import ZenpyException
from zenpy.lib.generator import GenericCursorResultsGenerator, TicketCursorGenerator

from exporter.config import ZendeskConfig
from exporter.stats import UpstreamStats
from tensafe_ops.http import RateLimiter, UpstreamError, classify_status, offload, with_retries
from tensafe_ops.log import get_logger

T = TypeVar("T")
log = get_logger("tensafe_ops.exporter.zendesk")

SOURCE = "zendesk"
GENERAL_RATE_LIMIT_PER_MINUTE = 200.0
"""Zendesk's smallest plan limit (Suite Team) for everything but the incremental export."""
ORGANIZATION_PAGE_SIZE = 100  # the cursor pagination maximum


@dataclass(frozen=True)
class ExportPage:
    tickets: list[dict[str, Any]]
    metric_sets: list[dict[str, Any]]
    after_cursor: str | None
    end_of_stream: bool


def point_zenpy_at(base_url: str | None) -> None:
    """zenpy builds `https://<subdomain>.zendesk.com` URLs unless these variables override
    scheme and host (process-wide: every zenpy client in the process shares them)."""
    if base_url is None:
        return
    parts = urlsplit(base_url)
    os.environ["ZENPY_FORCE_SCHEME"] = parts.scheme
    os.environ["ZENPY_FORCE_NETLOC"] = parts.netloc


class ZendeskClient:
    def __init__(
        self, cfg: ZendeskConfig, stats: UpstreamStats, *, backoff_base: float = 1.0
    ) -> None:
        self.cfg = cfg
        self.stats = stats
        self.backoff_base = backoff_base
        # The export allows `rate_limit_per_minute` (10) requests a minute: no bursts.
        self.export_limiter = RateLimiter(cfg.rate_limit_per_minute, burst=1.0)
        self.general_limiter = RateLimiter(GENERAL_RATE_LIMIT_PER_MINUTE)
        point_zenpy_at(cfg.base_url)
        session = requests.Session()
        session.hooks["response"].append(self._on_response)
        self.session = session
        self._zenpy: Zenpy | None = None

    @property
    def zenpy(self) -> Zenpy:
        """Built on first use, so a missing token fails a refresh, not the process start."""
        if self._zenpy is None:
            token = self.cfg.token.get_secret_value()
            if not token:
                raise UpstreamError(
                    "auth", "no Zendesk API token configured (exporter.zendesk.token)"
                )
            self._zenpy = Zenpy(
                subdomain=self.cfg.subdomain,
                email=self.cfg.email,
                token=token,
                session=self.session,
                timeout=self.cfg.request_timeout,
                disable_cache=True,  # zenpy's object caches have no TTL
            )
        return self._zenpy

    def close(self) -> None:
        self.session.close()

    def _on_response(self, response: requests.Response, *_: Any, **__: Any) -> None:
        """Runs in the worker thread for every HTTP response."""
        self.stats.record_request(SOURCE, response.status_code)
        error = classify_status(response.status_code, response.headers.get("Retry-After"))
        if error is not None:
            response.close()  # zenpy never sees this response: free its connection now
            raise error

    async def export_page(self, cursor: str | None, start_time: int) -> ExportPage:
        """One page of the cursor-based incremental ticket export with metric sets."""

        def fetch() -> ExportPage:
            include = ["metric_sets"]
            if cursor is None:
                result = self.zenpy.tickets.incremental(
                    start_time=start_time, include=include, per_page=self.cfg.page_size
                )
            else:
                result = self.zenpy.tickets.incremental(
                    cursor=cursor, include=include, per_page=self.cfg.page_size
                )
            if not isinstance(result, TicketCursorGenerator):
                raise UpstreamError("malformed", "incremental export answered with no ticket page")
            # zenpy does not deserialize the metric_sets side-load; the page's JSON has it.
            body: dict[str, Any] = result._response_json
            return ExportPage(
                tickets=list(body["tickets"]),
                metric_sets=list(body.get("metric_sets") or []),
                after_cursor=body.get("after_cursor"),
                end_of_stream=bool(body["end_of_stream"]),
            )

        return await self._call(fetch, self.export_limiter, "incremental_export")

    async def organizations(self) -> list[dict[str, Any]]:
        """Every organization, one cursor page (100) per request."""
        pages: list[GenericCursorResultsGenerator] = []

        def first() -> bool:
            result = self.zenpy.organizations(cursor_pagination=ORGANIZATION_PAGE_SIZE)
            if not isinstance(result, GenericCursorResultsGenerator):
                raise UpstreamError("malformed", "organizations answered with no page")
            pages.append(result)
            return bool(result._response_json.get("meta", {}).get("has_more"))

        def following() -> bool:
            generator = pages[-1]
            try:
                generator.handle_pagination()  # fetches links.next in place
            except StopIteration:
                return False
            return bool(generator._response_json.get("meta", {}).get("has_more"))

        organizations: list[dict[str, Any]] = []
        more = await self._call(first, self.general_limiter, "organizations")
        organizations += pages[-1]._response_json["organizations"]
        while more:
            more = await self._call(following, self.general_limiter, "organizations")
            organizations += pages[-1]._response_json["organizations"]
        return organizations

    async def _call(self, func: Callable[[], T], limiter: RateLimiter, what: str) -> T:
        async def attempt() -> T:
            await limiter.acquire()
            try:
                return await offload(lambda: _mapped(func), seconds=self.cfg.request_timeout + 5)
            except UpstreamError as exc:
                self.stats.record_error(SOURCE, exc.kind)
                raise

        def on_retry(exc: UpstreamError, delay: float) -> None:
            log.warning("zendesk_retry", call=what, kind=exc.kind, status=exc.status, delay=delay)

        return await with_retries(
            attempt,
            max_retries=self.cfg.max_retries,
            on_retry=on_retry,
            backoff_base=self.backoff_base,
        )


def _mapped(func: Callable[[], T]) -> T:
    """Run a zenpy call, mapping every failure to an UpstreamError (never echoing secrets)."""
    try:
        return func()
    except UpstreamError:
        raise
    except requests.Timeout:
        raise UpstreamError("timeout", "request to Zendesk timed out") from None
    except requests.ConnectionError:
        raise UpstreamError("network", "could not connect to Zendesk") from None
    except (ZenpyException, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UpstreamError(
            "malformed", f"unexpected Zendesk response ({type(exc).__name__})"
        ) from None
