"""zenpy, wrapped: one HTTP request per call, off the event loop, rate limited and retried.

zenpy is synchronous and, on a 429, sleeps `Retry-After` inside its thread. Here a
requests response hook counts every response and turns any non-2xx answer into an
`UpstreamError` before zenpy sees it, so zenpy never sleeps or retries by itself: the
async `RateLimiter` + `with_retries` decide when to call again.
"""

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from zenpy import Zenpy
from zenpy.lib.exception import ZenpyException

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


@dataclass(frozen=True)
class OrganizationPage:
    organizations: list[dict[str, Any]]
    next_url: str | None
    """Where the following page is; None after the last one."""


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

    def _get_json(self, api: Any, url: str) -> dict[str, Any]:
        """GET `url` through zenpy (its session, auth and response checks) and parse it once.

        This is the request zenpy's own result generators make for every following page;
        their first page, though, parses the body twice and builds a zenpy object for each
        of up to 1,000 records, which the exporter would only throw away.
        """
        body = api._get(url, raw_response=True).json()
        if not isinstance(body, dict):
            raise UpstreamError("malformed", "Zendesk answered with a body that is not an object")
        return body

    async def export_page(self, cursor: str | None, start_time: int) -> ExportPage:
        """One page of the cursor-based incremental ticket export with metric sets."""

        def fetch() -> ExportPage:
            api = self.zenpy.tickets
            include = ["metric_sets"]
            # The URLs zenpy's `tickets.incremental(...)` builds (it drops `per_page`
            # when a cursor is given).
            if cursor is None:
                endpoint = api.endpoint.incremental.cursor_start(
                    start_time=start_time, include=include, per_page=self.cfg.page_size
                )
            else:
                endpoint = api.endpoint.incremental.cursor(cursor=cursor, include=include)
            body = self._get_json(api, api._build_url(endpoint))
            return ExportPage(
                tickets=list(body["tickets"]),
                metric_sets=list(body.get("metric_sets") or []),
                after_cursor=body.get("after_cursor"),
                end_of_stream=bool(body["end_of_stream"]),
            )

        return await self._call(fetch, self.export_limiter, "incremental_export")

    async def organization_pages(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Every organization, one cursor page (100) per request, a page at a time."""
        next_url: str | None = None

        def fetch() -> OrganizationPage:
            api = self.zenpy.organizations
            url = next_url or api._build_url(api.endpoint(cursor_pagination=ORGANIZATION_PAGE_SIZE))
            body = self._get_json(api, url)
            more = bool((body.get("meta") or {}).get("has_more"))
            following = (body.get("links") or {}).get("next") if more else None
            return OrganizationPage(list(body["organizations"]), following)

        while True:
            page = await self._call(fetch, self.general_limiter, "organizations")
            yield page.organizations
            if page.next_url is None:
                return
            next_url = page.next_url

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
