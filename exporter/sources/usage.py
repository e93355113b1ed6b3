"""Product usage database: the configured SQL queries turned into metrics and per-account facts.

Every query runs with binds computed from `now` (`:now`, `:since_1d`, `:since_7d`,
`:since_30d`), each within `request_timeout`. Failures become `UpstreamError`s:
unreachable database -> network, slow query -> timeout, bad SQL or a result of the wrong
shape -> client_error / malformed, naming the query key (never the database URL).
"""

import asyncio
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from exporter.config import UsageConfig
from exporter.snapshot import CACHED_NOTE
from exporter.sources.base import SourceContext, SourceResult, off_loop
from tensafe_ops.http import ErrorKind, UpstreamError
from tensafe_ops.log import get_logger

log = get_logger("tensafe_ops.exporter.usage")

MAX_JOB_STATUSES = 20
"""Training job statuses beyond this many are summed into status="other"."""

Row = Sequence[Any]
ROW_WIDTHS = {
    "training_jobs_24h": 2,  # (status, count)
    "accounts": 3,  # (account_id, name, tier)
    "last_api_call_per_account": 2,  # (account_id, timestamp)
    "seats_per_account": 2,  # (account_id, count)
    "seats_removed_30d_per_account": 2,  # (account_id, count)
}
"""Column counts of the multi-row queries; the others return one row with one number."""
ACCOUNT_QUERIES = (
    "accounts",
    "last_api_call_per_account",
    "seats_per_account",
    "seats_removed_30d_per_account",
)
"""The per-account queries (in this order: names first). Each is folded into the facts as
soon as it returns, so 4 x 20,000 rows are never held at once."""
SEAT_FACTS = {"seats_per_account": "seats", "seats_removed_30d_per_account": "seats_removed_30d"}
_NO_FACTS = {"last_api_call": None, "seats": 0, "seats_removed_30d": 0, "tier": "unknown"}


def _binds(now: datetime, dialect: str) -> dict[str, Any]:
    moments = {
        "now": now,
        "since_1d": now - timedelta(days=1),
        "since_7d": now - timedelta(days=7),
        "since_30d": now - timedelta(days=30),
    }
    utc = {key: moment.astimezone(UTC) for key, moment in moments.items()}
    if dialect == "sqlite":
        # SQLite keeps timestamps as text in SQLAlchemy's format; compare like with like.
        return {key: moment.strftime("%Y-%m-%d %H:%M:%S.%f") for key, moment in utc.items()}
    return dict(utc)


def _classify(key: str, exc: Exception) -> UpstreamError:
    """Map a database failure to an UpstreamError kind without leaking the URL or rows."""
    if isinstance(exc, TimeoutError):
        return UpstreamError("timeout", f"usage query '{key}' timed out")
    reason = type(exc).__name__
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        reason = str(exc.orig).splitlines()[0] if str(exc.orig) else reason
    lost = isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    kind: ErrorKind
    if lost or isinstance(exc, OSError | sa.exc.InterfaceError | sa.exc.DisconnectionError):
        kind = "network"
    elif isinstance(exc, sa.exc.OperationalError):
        # SQLite reports bad SQL as OperationalError too; anything else is the server's trouble.
        if "unable to open" in reason:
            kind = "network"
        elif "no such" in reason or "syntax error" in reason:
            kind = "client_error"
        else:
            kind = "server_error"
    elif isinstance(exc, sa.exc.StatementError | sa.exc.ArgumentError):
        kind = "client_error"  # bad SQL, a missing bind, wrong types: the configured query
    else:
        kind = "server_error"
    if kind == "network":
        return UpstreamError(kind, f"usage database unreachable during '{key}' ({reason})")
    return UpstreamError(kind, f"usage query '{key}' failed: {reason}")


def _malformed(key: str, expected: str, rows: Sequence[Row]) -> UpstreamError:
    shape = f"{len(rows)} rows" + (f" of {len(rows[0])} columns" if rows else "")
    return UpstreamError("malformed", f"usage query '{key}' must return {expected}, got {shape}")


def _number(key: str, value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise UpstreamError("malformed", f"usage query '{key}' returned a non-number")
    return float(value)


def _timestamp(key: str, value: Any) -> float | None:
    """Unix seconds from a DB timestamp (datetime, ISO text from SQLite, or epoch number)."""
    if value is None:
        return None
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise UpstreamError("malformed", f"usage query '{key}' returned a bad time") from None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    raise UpstreamError("malformed", f"usage query '{key}' returned a non-timestamp")


def _scalar(key: str, rows: Sequence[Row]) -> float:
    if len(rows) != 1 or len(rows[0]) != 1:
        raise _malformed(key, "one row with one column", rows)
    return _number(key, rows[0][0])


def _columns(key: str, rows: Sequence[Row], width: int) -> None:
    if any(len(row) != width for row in rows):
        raise _malformed(key, f"rows of {width} columns", rows)


class _Join:
    """Counts rows without an account id and ids a query returned more than once."""

    def __init__(self) -> None:
        self.issues: Counter[str] = Counter()

    def rows(self, rows: Sequence[Row]) -> list[tuple[str, Row]]:
        seen: set[str] = set()
        out = []
        for row in rows:
            account = "" if row[0] is None else str(row[0]).strip()
            if not account:
                self.issues["missing_id"] += 1
                continue
            if account in seen:
                self.issues["duplicate_id"] += 1
            seen.add(account)
            out.append((account, row))
        return out


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc + CACHED_NOTE, labels=list(labels))


def _add_facts(
    facts: dict[str, dict[str, Any]], key: str, rows: Sequence[Row], join: _Join
) -> None:
    """Fold one per-account query into the facts: per account {last_api_call, seats,
    seats_removed_30d, tier, name}; duplicates merged."""
    for account, row in join.rows(rows):
        entry = facts.get(account)
        if entry is None:
            entry = facts[account] = {**_NO_FACTS, "name": account}
        if key == "accounts":
            if row[1] is not None and entry["name"] == account:  # the first name wins
                entry["name"] = str(row[1])
            if row[2] is not None and entry["tier"] == "unknown":
                entry["tier"] = sys.intern(str(row[2]))  # a few tiers over 20,000 accounts
        elif key == "last_api_call_per_account":
            called = _timestamp(key, row[1])
            if called is not None:
                entry["last_api_call"] = max(called, entry["last_api_call"] or called)
        else:
            entry[SEAT_FACTS[key]] += int(_number(key, row[1]))


def _families(
    rows: Mapping[str, Sequence[Row]], facts: Mapping[str, Any], join: _Join
) -> list[Metric]:
    singles = []
    for key, name, doc in (
        ("dau", "tensafe_usage_daily_active_users", "Users with an API call in the last 24h."),
        ("wau", "tensafe_usage_weekly_active_users", "Users with an API call in the last 7d."),
        ("mau", "tensafe_usage_monthly_active_users", "Users with an API call in the last 30d."),
        ("api_calls_24h", "tensafe_usage_api_calls_24h", "API calls in the last 24 hours."),
        ("signups_24h", "tensafe_usage_signups_24h", "Users who signed up in the last 24 hours."),
        ("activations_24h", "tensafe_usage_activations_24h", "Users activated in the last 24h."),
    ):
        family = _gauge(name, doc)
        family.add_metric([], _scalar(key, rows[key]))
        singles.append(family)

    key = "training_jobs_24h"
    by_status: Counter[str] = Counter()
    for status, count in rows[key]:
        by_status[str(status)] += int(_number(key, count))
    kept = dict(by_status.most_common(MAX_JOB_STATUSES))
    other = sum(by_status.values()) - sum(kept.values())
    jobs = _gauge(
        "tensafe_usage_training_jobs_24h", "Training jobs created in the last 24h.", ["status"]
    )
    for status, count in sorted(kept.items()):
        jobs.add_metric([status], count)
    if other:
        jobs.add_metric(["other"], other)

    seats = _gauge("tensafe_usage_seats", "Seats currently assigned, over all accounts.")
    seats.add_metric([], sum(f["seats"] for f in facts.values()))
    accounts = _gauge("tensafe_usage_accounts", "Accounts known to the usage database.")
    accounts.add_metric([], len(facts))
    issues = _gauge(
        "tensafe_account_join_issues",
        "Upstream rows with no product account id, or an id returned more than once.",
        ["source", "issue"],
    )
    for issue in ("missing_id", "duplicate_id"):
        issues.add_metric(["usage", issue], join.issues[issue])
    return [*singles, jobs, seats, accounts, issues]


def _overview(rows: Mapping[str, Sequence[Row]]) -> dict[str, Any]:
    """The aggregate numbers for the operator API (validated by `_families` already)."""
    overview: dict[str, Any] = {
        key: _scalar(key, rows[key])
        for key in ("dau", "wau", "mau", "api_calls_24h", "signups_24h", "activations_24h")
    }
    jobs: Counter[str] = Counter()
    for status, count in rows["training_jobs_24h"]:
        jobs[str(status)] += int(_number("training_jobs_24h", count))
    overview["training_jobs_24h"] = dict(jobs)
    return overview


class UsageSource:
    name = "usage"

    def __init__(self, cfg: UsageConfig, context: SourceContext) -> None:
        self.cfg = cfg
        self.context = context
        self.engine: AsyncEngine | None = None

    def _engine(self) -> AsyncEngine:
        if self.engine is None:
            try:
                self.engine = create_async_engine(
                    self.cfg.url.get_secret_value(), pool_pre_ping=True
                )
            except (sa.exc.SQLAlchemyError, ImportError) as exc:
                raise UpstreamError(
                    "client_error",
                    f"usage database URL is unusable ({type(exc).__name__}); it needs an async"
                    " driver, e.g. postgresql+asyncpg://... or sqlite+aiosqlite:///...",
                ) from None
        return self.engine

    async def _query(self, conn: AsyncConnection, key: str, binds: dict[str, Any]) -> list[Row]:
        sql: str = getattr(self.cfg.queries, key)
        try:
            async with asyncio.timeout(self.cfg.request_timeout):  # not wait_for: see runner.py
                result = await conn.execute(sa.text(sql), binds)
            return [tuple(row) for row in result]
        except TimeoutError:
            await conn.invalidate()  # a cancelled query may leave the connection mid-protocol
            raise UpstreamError(
                "timeout", f"usage query '{key}' took over {self.cfg.request_timeout:g}s"
            ) from None
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise _classify(key, exc) from None

    async def _fetch(
        self, now: datetime, join: _Join
    ) -> tuple[dict[str, list[Row]], dict[str, dict[str, Any]]]:
        """Rows of the aggregate queries, and the facts the per-account queries add up to."""
        engine = self._engine()
        binds = _binds(now, engine.dialect.name)
        conn = engine.connect()
        try:
            async with asyncio.timeout(self.cfg.request_timeout):
                await conn.start()
        except (TimeoutError, sa.exc.SQLAlchemyError, OSError) as exc:
            raise _classify("connect", exc) from None
        rows: dict[str, list[Row]] = {}
        facts: dict[str, dict[str, Any]] = {}
        try:
            fields = type(self.cfg.queries).model_fields
            for key in [*ACCOUNT_QUERIES, *(k for k in fields if k not in ACCOUNT_QUERIES)]:
                result = await self._query(conn, key, binds)
                if key in ROW_WIDTHS:
                    _columns(key, result, ROW_WIDTHS[key])
                if key in ACCOUNT_QUERIES:
                    # Tens of ms per 20,000 rows: in a worker thread. `facts`, `join` and the rows
                    # belong to this refresh alone and the loop leaves them alone meanwhile.
                    await off_loop(_add_facts, facts, key, result, join)
                else:
                    rows[key] = result
            return rows, facts
        finally:
            await conn.close()

    async def refresh(self, now: datetime) -> SourceResult:
        try:
            join = _Join()
            rows, facts = await self._fetch(now, join)
            families = await off_loop(_families, rows, facts, join)
            overview = _overview(rows)
        except UpstreamError as exc:
            self.context.stats.record_error(self.name, exc.kind)
            raise
        if join.issues:
            log.warning("usage_join_issues", **join.issues)
        return SourceResult(families, facts, overview=overview)

    async def aclose(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None


def create(cfg: UsageConfig, context: SourceContext) -> UsageSource:
    return UsageSource(cfg, context)
