"""PagerDuty source: open incidents, recent incident statistics and who is on call.

Talks to the REST API v2 through the official SDK (`pagerduty.RestApiV2Client`, sync,
httpx2 underneath). Every request runs in a worker thread via `offload`, after a token
from the source's `RateLimiter`, one page per call so that retries (`with_retries`) repeat
a single page, never a whole listing. Per refresh, with N open incidents and R incidents
created in the stats window: ceil(N/100) + ceil(R/100) + 1 requests (plus 4 exact counts
if the open listing hits PagerDuty's 10,000 offset cap). No per-incident requests.
"""

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pagerduty
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from exporter import incident_stats as stats
from exporter.config import PagerDutyConfig
from exporter.snapshot import CACHED_NOTE
from exporter.sources.base import SourceContext, SourceResult, off_loop
from tensafe_ops.http import (
    ErrorKind,
    RateLimiter,
    UpstreamError,
    classify_status,
    offload,
    parse_retry_after,
    with_retries,
)
from tensafe_ops.log import get_logger

SOURCE = "pagerduty"
RETRY_AFTER_WAIT = 60.0
"""The longest Retry-After a refresh waits for (PagerDuty's limits reset each minute); a
longer one fails the refresh at once and the runner tries again later."""
OFFSET_CAP = 10_000
"""PagerDuty answers 400 when offset + limit exceeds this (classic pagination)."""
PAGE_SIZE = 100
ACK_NAMESPACE = "pagerduty.ack"
OPENED_WINDOWS = {"8h": timedelta(hours=8), "24h": timedelta(hours=24)}
ACK_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
QUANTILES = (0.5, 0.95)
ONCALL_LOOKAHEAD = timedelta(hours=24)
LISTED_MAX = 500
"""At most this many incidents in the overview (open ones first, then the newest)."""
URGENCIES = ("high", "low")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")

log = get_logger("tensafe_ops.exporter.pagerduty")


class _RateLimitedError(Exception):
    """Raised from the response hook so the SDK never sleeps on a 429 itself."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("rate limited (429)")
        self.retry_after = retry_after


class _Client(pagerduty.RestApiV2Client):
    """The SDK client, also accepting plain http:// on loopback (the sandbox fakes).

    The SDK refuses any base URL but https://; everything that is not loopback still must be.
    """

    @property
    def url(self) -> str:
        return str(self._url)

    @url.setter
    def url(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        loopback_http = parts.scheme == "http" and parts.hostname in _LOOPBACK
        if parts.scheme != "https" and not loopback_http:
            raise pagerduty.UrlError("API base URL must use https:// (http:// only on loopback)")
        self._url = base_url.rstrip("/")


def _help(text: str) -> str:
    return text + CACHED_NOTE


class PagerDutySource:
    name = SOURCE

    def __init__(
        self,
        cfg: PagerDutyConfig,
        context: SourceContext,
        *,
        offset_cap: int = OFFSET_CAP,
        backoff_base: float = 1.0,
    ) -> None:
        self.cfg = cfg
        self.context = context
        self.offset_cap = offset_cap
        self.backoff_base = backoff_base
        self.limiter = RateLimiter(cfg.rate_limit_per_minute)
        self.client = _Client(
            cfg.token.get_secret_value(),
            base_url=cfg.base_url,
            event_hooks={"response": [self._on_response]},
        )
        # httpx takes float seconds; the SDK merely annotates its default (60) as int.
        self.client.timeout = cfg.request_timeout  # type: ignore[assignment]
        # Network errors are retried by `with_retries` (with backoff), not by the SDK.
        self.client.max_network_attempts = 0

    def _on_response(self, response: httpx2.Response) -> None:
        """Count every HTTP response; turn a 429 into an exception before the SDK sees it.

        Left alone, the SDK retries 429 forever with `time.sleep` and ignores the server's
        reset time. Raising here (httpx's documented hook mechanism) skips that loop.
        """
        self.context.stats.record_request(SOURCE, response.status_code)
        if response.status_code == 429:
            headers = response.headers
            reset = headers.get("retry-after") or headers.get("ratelimit-reset")
            raise _RateLimitedError(parse_retry_after(reset))

    def _get_sync(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.get(path, params=dict(params))
        except _RateLimitedError as exc:
            raise UpstreamError(
                "rate_limited",
                f"GET {path}: rate limited (429)",
                status=429,
                retry_after=exc.retry_after,
            ) from None
        except pagerduty.HttpError as exc:
            # The SDK raises on 401; its message quotes part of the token, so drop it.
            status = exc.response.status_code if exc.response is not None else 401
            error = classify_status(status)
            kind: ErrorKind = error.kind if error is not None else "client_error"
            raise UpstreamError(kind, f"GET {path}: rejected ({status})", status=status) from None
        except pagerduty.Error as exc:
            cause = exc.__cause__
            if isinstance(cause, httpx2.TimeoutException):
                raise UpstreamError("timeout", f"GET {path}: timed out") from None
            raise UpstreamError("network", f"GET {path}: {type(cause or exc).__name__}") from None
        error = classify_status(response.status_code, response.headers.get("retry-after"))
        if error is not None:
            raise UpstreamError(
                error.kind,
                f"GET {path}: {error}{_error_details(response)}",
                status=response.status_code,
                retry_after=error.retry_after,
            )
        try:
            body = response.json()
        except ValueError:
            raise UpstreamError("malformed", f"GET {path}: response is not JSON") from None
        if not isinstance(body, dict):
            raise UpstreamError("malformed", f"GET {path}: response is not a JSON object")
        return body

    async def _get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        async def attempt() -> dict[str, Any]:
            await self.limiter.acquire()
            try:
                return await offload(
                    lambda: self._get_sync(path, params), seconds=self.cfg.request_timeout + 5
                )
            except UpstreamError as exc:
                self.context.stats.record_error(SOURCE, exc.kind)
                if exc.retry_after:  # capped: a bogus hour must not park later refreshes
                    self.limiter.penalize(min(exc.retry_after, RETRY_AFTER_WAIT))
                raise

        def on_retry(error: UpstreamError, delay: float) -> None:
            log.warning("pagerduty_retry", path=path, kind=error.kind, delay=round(delay, 2))

        return await with_retries(
            attempt,
            max_retries=self.cfg.max_retries,
            on_retry=on_retry,
            backoff_base=self.backoff_base,
            backoff_cap=RETRY_AFTER_WAIT,
        )

    async def _list(
        self, path: str, wrapper: str, params: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], bool]:
        """Every object of a classic-paginated listing; True if the offset cap cut it short."""
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            limit = min(PAGE_SIZE, self.offset_cap - offset)
            if limit <= 0:
                log.warning("pagerduty_offset_cap", path=path, fetched=len(items))
                return items, True
            query = {**params, "limit": limit, "offset": offset}
            if offset == 0:
                query["total"] = "true"
            body = await self._get(path, query)
            page = body.get(wrapper)
            if not isinstance(page, list):
                raise UpstreamError("malformed", f"GET {path}: no '{wrapper}' list")
            items.extend(page)
            if offset == 0 and isinstance(body.get("total"), int) and body["total"] > len(page):
                log.info("pagerduty_listing", path=path, total=body["total"])
            if not body.get("more") or not page:
                return items, False
            offset += len(page)

    async def _exact_open_counts(self) -> dict[tuple[str, str], int]:
        """Open counts by (urgency, status) from `total=true`, for when listing was capped."""
        counts = {}
        for urgency in URGENCIES:
            for status in stats.OPEN_STATUSES:
                params = {
                    "statuses[]": [status],
                    "urgencies[]": [urgency],
                    "date_range": "all",
                    "limit": 1,
                    "offset": 0,
                    "total": "true",
                }
                body = await self._get("/incidents", params)
                counts[(urgency, status)] = int(body.get("total") or 0)
        return counts

    async def _known_acks(self, incidents: Sequence[dict[str, Any]]) -> dict[str, datetime]:
        """First acknowledgement times seen so far, persisted for the incidents still in view.

        Resolved incidents no longer list their acknowledgements, so a time seen while an
        incident was acknowledged is remembered until the incident leaves the stats window.
        """
        stored = await self.context.state.get_all(ACK_NAMESPACE)
        known = {key: stats.parse_time(str(value)) for key, value in stored.items()}
        seen: dict[str, datetime] = {}
        for incident in incidents:
            acked = stats.first_acknowledged_at(incident)
            if acked is not None and (incident["id"] not in known or acked < known[incident["id"]]):
                seen[incident["id"]] = acked
        if seen:
            await self.context.state.put_many(
                ACK_NAMESPACE, {key: value.isoformat() for key, value in seen.items()}
            )
        in_view = {incident["id"] for incident in incidents}
        gone = [key for key in known if key not in in_view]
        if gone:
            await self.context.state.delete_many(ACK_NAMESPACE, gone)
        return {key: value for key, value in (known | seen).items() if key in in_view}

    async def refresh(self, now: datetime) -> SourceResult:
        window = timedelta(days=self.cfg.stats_window_days)
        listing_start = now - max(window, *OPENED_WINDOWS.values(), *ACK_WINDOWS.values())
        open_incidents, open_capped = await self._list(
            "/incidents",
            "incidents",
            {"statuses[]": list(stats.OPEN_STATUSES), "date_range": "all"},
        )
        recent, recent_capped = await self._list(
            "/incidents",
            "incidents",
            {"since": _iso(listing_start), "until": _iso(now + timedelta(seconds=1))},
        )
        # Today's coming shifts too (the operator handoff names the night shift); the
        # on-call metric keeps only the entries current at `now`.
        oncalls, oncalls_capped = await self._list(
            "/oncalls",
            "oncalls",
            {"since": _iso(now), "until": _iso(now + ONCALL_LOOKAHEAD)},
        )
        by_id = {i["id"]: i for i in recent} | {i["id"]: i for i in open_incidents}
        known_acks = await self._known_acks(list(by_id.values()))
        exact_counts = await self._exact_open_counts() if open_capped else None
        capped = {
            "open_incidents": open_capped,
            "recent_incidents": recent_capped,
            "oncalls": oncalls_capped,
        }
        # Up to 2 x 10,000 incidents: in a worker thread. The listings were built by this
        # refresh and nothing else holds them, so the thread has them to itself.
        families = await off_loop(
            incident_families,
            self.cfg,
            now,
            open_incidents,
            recent,
            oncalls,
            known_acks,
            exact_counts,
            capped,
        )
        overview = await off_loop(incident_overview, now, open_incidents, recent, oncalls)
        return SourceResult(families, overview=overview)

    async def aclose(self) -> None:
        await offload(self.client.close, seconds=5)


def incident_families(
    cfg: PagerDutyConfig,
    now: datetime,
    open_incidents: Sequence[dict[str, Any]],
    recent: Sequence[dict[str, Any]],
    oncalls: Sequence[dict[str, Any]],
    known_acks: Mapping[str, datetime],
    exact_counts: Mapping[tuple[str, str], int] | None,
    capped: Mapping[str, bool],
) -> list[Metric]:
    """Every PagerDuty family from one refresh's listings (`exact_counts` replaces the open
    counts when the open listing was capped)."""
    window = timedelta(days=cfg.stats_window_days)
    open_counts = (
        stats.open_by_urgency_status(open_incidents) if exact_counts is None else exact_counts
    )
    return [
        _open_family(open_counts),
        _priority_family(open_incidents, recent),
        _opened_family(recent, now),
        _quantile_family(
            "tensafe_pagerduty_time_to_acknowledge_seconds",
            f"Time from trigger to first acknowledgement, over incidents created in the "
            f"last {cfg.stats_window_days} days.",
            stats.times_to_acknowledge(recent, known_acks, now, window),
        ),
        _quantile_family(
            "tensafe_pagerduty_time_to_resolve_seconds",
            f"Time from trigger to resolution, over incidents created in the last "
            f"{cfg.stats_window_days} days.",
            stats.times_to_resolve(recent, now, window),
        ),
        *_acknowledge_families(cfg, now, recent, known_acks),
        _oldest_family(open_incidents, now),
        _oncall_family([o for o in oncalls if _on_call_now(o, now)], cfg.max_oncall_series),
        _capped_family(capped),
    ]


def _incident_json(incident: Mapping[str, Any]) -> dict[str, Any]:
    acked = stats.first_acknowledged_at(incident)
    service = incident.get("service") or {}
    policy = incident.get("escalation_policy") or {}
    return {
        "id": incident.get("id"),
        "number": incident.get("incident_number"),
        "title": incident.get("title") or incident.get("summary") or "",
        "status": incident.get("status"),
        "urgency": incident.get("urgency"),
        "priority": stats.priority_name(incident),
        "service": service.get("summary"),
        "escalation_policy": policy.get("summary"),
        "created_at": incident.get("created_at"),
        "acknowledged_at": None if acked is None else _iso(acked),
        "resolved_at": incident.get("resolved_at"),
        "assignees": [
            str((a.get("assignee") or {}).get("summary"))
            for a in incident.get("assignments") or []
            if a.get("assignee")
        ],
        "html_url": incident.get("html_url"),
    }


def incident_overview(
    now: datetime,
    open_incidents: Sequence[dict[str, Any]],
    recent: Sequence[dict[str, Any]],
    oncalls: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """The open incidents and those created in the listing window (titles included), and the
    on-call shifts from now to ONCALL_LOOKAHEAD, for the operator API."""
    by_id = {i["id"]: i for i in recent} | {i["id"]: i for i in open_incidents}
    ordered = sorted(
        by_id.values(),
        key=lambda i: (not stats.is_open(i), -stats.parse_time(i["created_at"]).timestamp()),
    )
    shifts = [
        {
            "escalation_policy": str((o.get("escalation_policy") or {}).get("summary")),
            "level": o.get("escalation_level"),
            "user": str((o.get("user") or {}).get("summary")),
            "start": o.get("start"),
            "end": o.get("end"),
        }
        for o in oncalls
        if o.get("escalation_policy") and o.get("user")
    ]
    return {
        "incidents": [_incident_json(i) for i in ordered[:LISTED_MAX]],
        "open_total": sum(1 for i in open_incidents if stats.is_open(i)),
        "oncalls": sorted(
            shifts, key=lambda o: (o["escalation_policy"], o["level"] or 0, o["start"] or "")
        )[:LISTED_MAX],
        "listed_at": _iso(now),
    }


def _on_call_now(oncall: Mapping[str, Any], now: datetime) -> bool:
    """Entries without start/end are permanent (the API sends null for those)."""
    start, end = oncall.get("start"), oncall.get("end")
    return (start is None or stats.parse_time(start) <= now) and (
        end is None or stats.parse_time(end) > now
    )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_details(response: httpx2.Response) -> str:
    """PagerDuty's own error message and details, when the body has them."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return ""
    details = [str(error.get("message", ""))] + [str(e) for e in error.get("errors") or []]
    return ": " + "; ".join(d for d in details if d)[:300]


def _open_family(counts: Mapping[tuple[str, str], int]) -> Metric:
    family = GaugeMetricFamily(
        "tensafe_pagerduty_open_incidents",
        _help("Open PagerDuty incidents (any age) by urgency and status."),
        labels=["urgency", "status"],
    )
    for urgency in URGENCIES:
        for status in stats.OPEN_STATUSES:
            family.add_metric([urgency, status], counts.get((urgency, status), 0))
    return family


def _priority_family(
    open_incidents: Sequence[dict[str, Any]], recent: Sequence[dict[str, Any]]
) -> Metric:
    family = GaugeMetricFamily(
        "tensafe_pagerduty_open_incidents_by_priority",
        _help("Open PagerDuty incidents by priority (none = no priority set)."),
        labels=["priority"],
    )
    counts = stats.open_by_priority(open_incidents)
    # Priorities seen recently are shown at 0 too, so a drained priority reads 0, not absent.
    names = set(counts) | {stats.priority_name(i) for i in recent}
    for name in sorted(names):
        family.add_metric([name], counts.get(name, 0))
    return family


def _opened_family(recent: Sequence[dict[str, Any]], now: datetime) -> Metric:
    family = GaugeMetricFamily(
        "tensafe_pagerduty_incidents_opened",
        _help("PagerDuty incidents created within the trailing window."),
        labels=["window"],
    )
    for label, length in OPENED_WINDOWS.items():
        family.add_metric([label], stats.opened_within(recent, now, length))
    return family


def _quantile_family(name: str, text: str, values: Sequence[float]) -> Metric:
    """A summary: p50/p95 samples (none without data), plus `_count` and `_sum`."""
    family = SummaryMetricFamily(name, _help(text))
    for q in QUANTILES:
        value = stats.quantile(values, q)
        if value is not None and math.isfinite(value):
            family.samples.append(Sample(name, {"quantile": str(q)}, value))
    family.add_metric([], count_value=len(values), sum_value=float(sum(values)))
    return family


def _acknowledge_families(
    cfg: PagerDutyConfig,
    now: datetime,
    recent: Sequence[dict[str, Any]],
    known_acks: Mapping[str, datetime],
) -> list[Metric]:
    targets = {str(urgency): seconds for urgency, seconds in cfg.acknowledge_targets.items()}
    target = GaugeMetricFamily(
        "tensafe_pagerduty_acknowledge_target_seconds",
        _help("Configured respond-within target per urgency (acknowledge_targets)."),
        labels=["urgency"],
    )
    counted = GaugeMetricFamily(
        "tensafe_pagerduty_acknowledged_incidents",
        _help(
            "Incidents created in the window and acknowledged (or resolved without an "
            "acknowledgement), by whether that came within the urgency's target."
        ),
        labels=["urgency", "window", "result"],
    )
    ratio = GaugeMetricFamily(
        "tensafe_pagerduty_acknowledge_achievement_ratio",
        _help("Share of those incidents that met the target (absent without any)."),
        labels=["urgency", "window"],
    )
    for urgency in URGENCIES:
        if urgency in targets:
            target.add_metric([urgency], targets[urgency])
    for label, length in ACK_WINDOWS.items():
        counts = stats.acknowledge_achievement(recent, known_acks, now, length, targets)
        for urgency in URGENCIES:
            if urgency not in targets:
                continue
            met, missed = counts[(urgency, "met")], counts[(urgency, "missed")]
            counted.add_metric([urgency, label, "met"], met)
            counted.add_metric([urgency, label, "missed"], missed)
            if met + missed:
                ratio.add_metric([urgency, label], met / (met + missed))
    return [target, counted, ratio]


def _oldest_family(open_incidents: Sequence[dict[str, Any]], now: datetime) -> Metric:
    family = GaugeMetricFamily(
        "tensafe_pagerduty_oldest_unacknowledged_incident_age_seconds",
        _help("Age of the oldest triggered (unacknowledged) incident; 0 when there is none."),
    )
    family.add_metric([], stats.oldest_unacknowledged_age(open_incidents, now))
    return family


def _oncall_family(oncalls: Sequence[dict[str, Any]], cap: int) -> Metric:
    family = GaugeMetricFamily(
        "tensafe_pagerduty_oncall_info",
        _help(f"1 per user on call now at escalation level 1, by escalation policy (max {cap})."),
        labels=["escalation_policy", "user"],
    )
    pairs = sorted(
        {
            (str(o["escalation_policy"].get("summary")), str(o["user"].get("summary")))
            for o in oncalls
            if o.get("escalation_level") == 1 and o.get("escalation_policy") and o.get("user")
        }
    )
    for policy, user in pairs[:cap]:
        family.add_metric([policy, user], 1)
    return family


def _capped_family(capped: Mapping[str, bool]) -> Metric:
    family = GaugeMetricFamily(
        "tensafe_pagerduty_pagination_capped",
        _help("1 if a listing stopped at PagerDuty's 10,000 offset cap (values are partial)."),
        labels=["listing"],
    )
    for listing, hit in capped.items():
        family.add_metric([listing], 1 if hit else 0)
    return family


def create(cfg: PagerDutyConfig, context: SourceContext) -> PagerDutySource:
    return PagerDutySource(cfg, context)
