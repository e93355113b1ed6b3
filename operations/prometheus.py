"""Instant queries against Prometheus' HTTP API (`GET /api/v1/query`), many at once.

A `Readings` holds one request's values: a query's float, None for "no data" (an empty result
or NaN, e.g. an error rate without traffic), or the reason it failed. When Prometheus cannot be
reached at all, every value is unknown and `reachable` is False: callers say so and never show
green on missing data.
"""

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

USER_AGENT = "tensafe-ops operator API"


class PrometheusError(Exception):
    """A query failed; `unreachable` when Prometheus itself could not be reached."""

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def redacted(url: str) -> str:
    """The URL without user:password (safe to show and log)."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass
class Readings:
    configured: bool
    url: str | None
    reachable: bool | None = None
    """None when nothing was asked."""
    error: str | None = None
    values: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> float | None:
        return self.values.get(key)

    def status(self) -> dict[str, Any]:
        return {
            "configured": self.configured,
            "url": None if self.url is None else redacted(self.url),
            "reachable": self.reachable,
            "error": self.error,
        }


def not_configured() -> Readings:
    return Readings(
        configured=False,
        url=None,
        reachable=False,
        error="no Prometheus configured (operator.prometheus_url)",
    )


def _scalar(body: Mapping[str, Any]) -> float | None:
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        value = float(result[1])
    elif kind == "vector" and isinstance(result, list):
        if not result:
            return None
        # Queries aggregate to one series; should several come back, report the largest.
        value = max(float(sample["value"][1]) for sample in result)
    else:
        raise PrometheusError(f"unexpected result type {kind!r}", unreachable=False)
    return None if math.isnan(value) or math.isinf(value) else value


class Prometheus:
    def __init__(self, session: aiohttp.ClientSession, url: str, timeout: float) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.timeout = timeout

    async def query(self, promql: str, at: datetime | None = None) -> float | None:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        try:
            async with self.session.get(
                f"{self.url}/api/v1/query",
                params=params,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": USER_AGENT},
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                status = response.status
        except TimeoutError:
            raise PrometheusError(
                f"Prometheus at {redacted(self.url)} did not answer within {self.timeout:g}s",
                unreachable=True,
            ) from None
        except aiohttp.ClientError as exc:
            raise PrometheusError(
                f"Prometheus at {redacted(self.url)} is unreachable ({type(exc).__name__})",
                unreachable=True,
            ) from None
        if not isinstance(body, dict):
            raise PrometheusError(
                f"Prometheus at {redacted(self.url)} answered {status} without a JSON body",
                unreachable=status >= 500 or status in (401, 403, 404),
            )
        if body.get("status") != "success":
            # 400/422: a bad query (ours or a configured one); 503: Prometheus not ready.
            message = str(body.get("error") or f"HTTP {status}")[:300]
            raise PrometheusError(f"query failed: {message}", unreachable=status >= 500)
        return _scalar(body)

    async def read(self, queries: Mapping[str, str], at: datetime | None = None) -> Readings:
        """Every query at once; the keys of `queries` become the keys of the readings."""
        readings = Readings(configured=True, url=self.url)
        keys = list(queries)
        results = await asyncio.gather(
            *(self.query(queries[key], at) for key in keys), return_exceptions=True
        )
        unreachable: list[PrometheusError] = []
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, PrometheusError):
                readings.values[key] = None
                readings.errors[key] = str(result)
                if result.unreachable:
                    unreachable.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                readings.values[key] = result
        readings.reachable = not unreachable or len(unreachable) < len(keys)
        if unreachable and not readings.reachable:
            readings.error = str(unreachable[0])
        return readings
