"""The product usage database of the simulated world (format in docs/world-file/usage.md).

`world.usage` holds one list of row dicts per table (timestamps as ISO 8601 strings), so a
world file can spell out any scenario. Accounts get a churn-risk mix: most are active,
some went quiet 3-7 or 7+ days ago (a few never called the API), some removed seats in
the last 30 days (some 25% or more). `advance` keeps the accounts that called the API in
the last 3 days calling, so a world file's quiet accounts stay quiet.

API call volume stays bounded: at most `_API_USERS` calling users per account, one call
per active day over 30 days and a few in the last 24 hours.
"""

import math
import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from tensafe_ops.sandbox.world import Account, World, WorldSize

TABLES = ("accounts", "users", "seats", "api_calls", "training_jobs")
ENDPOINTS = ("/v1/inference", "/v1/embeddings", "/v1/models", "/v1/datasets", "/v1/training/jobs")
OPEN_JOB_STATUSES = ("queued", "running")
_API_USERS = 5
_HISTORY_DAYS = 30
_DAY = 86400.0

metadata = sa.MetaData()
# No foreign keys: a world file may reference accounts it does not list.
accounts_table = sa.Table(
    "accounts",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("tier", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
users_table = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.String(64), nullable=False, index=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True, index=True),
)
seats_table = sa.Table(
    "seats",
    metadata,
    sa.Column("account_id", sa.String(64), nullable=False, index=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
)
api_calls_table = sa.Table(
    "api_calls",
    metadata,
    sa.Column("account_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("called_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("endpoint", sa.String(200), nullable=False),
    sa.Index("ix_api_calls_account_called_at", "account_id", "called_at"),
)
training_jobs_table = sa.Table(
    "training_jobs",
    metadata,
    sa.Column("job_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
)
_TABLE_OBJECTS = {
    "accounts": accounts_table,
    "users": users_table,
    "seats": seats_table,
    "api_calls": api_calls_table,
    "training_jobs": training_jobs_table,
}
_TIMESTAMPS = ("created_at", "activated_at", "added_at", "removed_at", "called_at")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse(value: Any) -> datetime:
    """A row timestamp: ISO text (naive = UTC) or a datetime already parsed by YAML."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _profile(rng: random.Random, account: Account) -> tuple[int | None, int]:
    """(days since the account last called the API or None if never, seats to remove)."""
    activity = rng.random()
    if activity < 0.02:
        idle_days: int | None = None
    elif activity < 0.11:
        idle_days = rng.randint(7, 25)
    elif activity < 0.20:
        idle_days = rng.randint(3, 6)
    else:
        idle_days = 0
    churn = rng.random()
    if churn < 0.05:  # 25% or more of the seats at the start of the window
        removed = math.ceil(account.seats / 3)
    elif churn < 0.15:
        removed = max(1, account.seats // 10)
    else:
        removed = 0
    return idle_days, removed


class _Ids:
    def __init__(self, world: World) -> None:
        self.user = max((int(u["user_id"]) for u in world.usage.get("users", [])), default=0)
        self.job = max((int(j["job_id"]) for j in world.usage.get("training_jobs", [])), default=0)

    def next_user(self) -> int:
        self.user += 1
        return self.user

    def next_job(self) -> int:
        self.job += 1
        return self.job


def _add_user(
    world: World, ids: _Ids, rng: random.Random, account: Account, created: datetime
) -> int:
    user_id = ids.next_user()
    activated = created + timedelta(hours=rng.uniform(0.1, 48))
    world.usage["users"].append(
        {
            "user_id": user_id,
            "account_id": account.id,
            "email": f"user{user_id}@{account.id.replace('_', '-')}.example",
            "created_at": _iso(created),
            "activated_at": _iso(activated)
            if activated <= world.now and rng.random() < 0.9
            else None,
        }
    )
    world.usage["seats"].append(
        {
            "account_id": account.id,
            "user_id": user_id,
            "added_at": _iso(created),
            "removed_at": None,
        }
    )
    return user_id


def _call(account: str, user: int, at: datetime, rng: random.Random) -> dict[str, Any]:
    return {
        "account_id": account,
        "user_id": user,
        "called_at": _iso(at),
        "endpoint": rng.choice(ENDPOINTS),
    }


def _job(ids: _Ids, account: str, status: str, at: datetime) -> dict[str, Any]:
    return {
        "job_id": ids.next_job(),
        "account_id": account,
        "status": status,
        "created_at": _iso(at),
    }


def _history(
    world: World, rng: random.Random, ids: _Ids, account: Account, users: list[int], idle_days: int
) -> None:
    now = world.now
    for day in range(idle_days, _HISTORY_DAYS):
        day_end = now - timedelta(days=day)
        if day_end - timedelta(days=1) < account.created_at:
            break
        callers = [u for u in users[:_API_USERS] if rng.random() < 0.6]
        if day == idle_days and not callers:
            callers = users[:1]  # the last active day really has a call
        for user in callers:
            for _ in range(rng.randint(1, 3) if day == 0 else 1):
                at = day_end - timedelta(seconds=rng.uniform(0, _DAY))
                world.usage["api_calls"].append(_call(account.id, user, at, rng))
        if rng.random() < (0.5 if account.tier == "enterprise" else 0.15):
            status = rng.choices(("succeeded", "failed", "cancelled"), (85, 10, 5))[0]
            if day == 0:
                status = rng.choice(("queued", "running", "succeeded", "failed"))
            at = day_end - timedelta(seconds=rng.uniform(0, _DAY))
            world.usage["training_jobs"].append(_job(ids, account.id, status, at))


def generate(world: World, rng: random.Random, size: WorldSize) -> None:
    """Accounts, users and seats matching `world.accounts`, with 30 days of usage."""
    for table in TABLES:
        world.usage.setdefault(table, [])
    ids = _Ids(world)
    now = world.now
    for account in world.accounts:
        world.usage["accounts"].append(
            {
                "account_id": account.id,
                "name": account.name,
                "tier": account.tier,
                "created_at": _iso(account.created_at),
            }
        )
        idle_days, removed = _profile(rng, account)
        lifetime = (now - account.created_at).total_seconds()
        users = []
        for _ in range(account.seats + removed):
            recent = rng.random() < 0.002  # ~ the signup rate of `advance`
            age = rng.uniform(0, _DAY) if recent else rng.uniform(_DAY, max(lifetime, _DAY))
            users.append(_add_user(world, ids, rng, account, now - timedelta(seconds=age)))
        # The last `removed` seats left the team within the last 30 days.
        for seat in world.usage["seats"][len(world.usage["seats"]) - removed :]:
            added = _parse(seat["added_at"])
            window_start = max(added, now - timedelta(days=_HISTORY_DAYS))
            seat["removed_at"] = _iso(window_start + (now - window_start) * rng.uniform(0.1, 0.9))
        if idle_days is not None:
            _history(world, rng, ids, account, users[: account.seats], idle_days)


def _callers(world: World, since: datetime) -> dict[str, list[int]]:
    """Up to `_API_USERS` seated users of each account that called the API after `since`."""
    active = {c["account_id"] for c in world.usage["api_calls"] if _parse(c["called_at"]) > since}
    seated: dict[str, list[int]] = defaultdict(list)
    for seat in world.usage.get("seats", []):
        if seat["removed_at"] is None and seat["account_id"] in active:
            seated[seat["account_id"]].append(int(seat["user_id"]))
    return {account: users[:_API_USERS] for account, users in seated.items()}


def _events(rng: random.Random, rate_per_day: float, seconds: float) -> int:
    """How many events happen in `seconds` at `rate_per_day` (expected value, randomly rounded)."""
    expected = rate_per_day * seconds / _DAY
    return int(expected) + (1 if rng.random() < expected - int(expected) else 0)


def advance(world: World, rng: random.Random, previous: datetime) -> None:
    """New API calls, training jobs, signups and activations between `previous` and now."""
    for table in TABLES:
        world.usage.setdefault(table, [])
    seconds = (world.now - previous).total_seconds()
    ids = _Ids(world)
    callers = _callers(world, previous - timedelta(days=3))
    pairs = [(account, user) for account, users in callers.items() for user in users]

    def moment() -> datetime:
        return previous + timedelta(seconds=rng.uniform(0, seconds))

    for _ in range(_events(rng, 1.2 * len(pairs), seconds) if pairs else 0):
        account, user = rng.choice(pairs)
        world.usage["api_calls"].append(_call(account, user, moment(), rng))
    for _ in range(_events(rng, 0.3 * len(callers), seconds) if callers else 0):
        world.usage["training_jobs"].append(
            _job(ids, rng.choice(list(callers)), "queued", moment())
        )
    by_id = {a.id: a for a in world.accounts if a.id in callers}
    for _ in range(_events(rng, 0.1 * len(by_id), seconds) if by_id else 0):
        _add_user(world, ids, rng, by_id[rng.choice(sorted(by_id))], moment())
        world.usage["users"][-1]["activated_at"] = None  # signed up just now, not activated yet
    # Open jobs move on (mean ~10 min queued, ~1 h running); new users activate (mean ~6 h).
    for job in world.usage["training_jobs"]:
        if job["status"] == "queued" and rng.random() < min(1.0, seconds / 600):
            job["status"] = "running"
        elif job["status"] == "running" and rng.random() < min(1.0, seconds / 3600):
            job["status"] = rng.choices(("succeeded", "failed"), (9, 1))[0]
    recent = world.now - timedelta(days=2)
    for row in world.usage["users"]:
        waiting = row["activated_at"] is None and _parse(row["created_at"]) >= recent
        if waiting and rng.random() < min(1.0, seconds / 21600):
            row["activated_at"] = _iso(world.now)


def _db_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in _TIMESTAMPS:
        if out.get(key) is not None:
            out[key] = _parse(out[key])
    return out


def _batches(rows: list[dict[str, Any]], size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield [_db_row(r) for r in rows[start : start + size]]


async def _append_new_rows(conn: AsyncConnection, world: World) -> None:
    for name in TABLES:
        table = _TABLE_OBJECTS[name]
        written = (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
        for batch in _batches(world.usage.get(name, [])[written:]):
            await conn.execute(table.insert(), batch)


async def _apply_updates(conn: AsyncConnection, world: World) -> None:
    """Rows the world may change after writing them: activations and open training jobs."""
    pending = await conn.execute(
        sa.select(users_table.c.user_id).where(users_table.c.activated_at.is_(None))
    )
    unactivated = set(pending.scalars())
    for user in world.usage.get("users", []):
        if user["user_id"] in unactivated and user["activated_at"] is not None:
            await conn.execute(
                users_table.update()
                .where(users_table.c.user_id == user["user_id"])
                .values(activated_at=_db_row(user)["activated_at"])
            )
    jobs = training_jobs_table
    open_jobs = await conn.execute(
        sa.select(jobs.c.job_id, jobs.c.status).where(jobs.c.status.in_(OPEN_JOB_STATUSES))
    )
    stored = {int(job_id): status for job_id, status in open_jobs}
    for job in world.usage.get("training_jobs", []):
        if job["job_id"] in stored and stored[job["job_id"]] != job["status"]:
            await conn.execute(
                jobs.update().where(jobs.c.job_id == job["job_id"]).values(status=job["status"])
            )


async def sync_database(world: World, url: str) -> None:
    """Bring the database at `url` up to the world: append new rows, apply the updates.

    Call after every `advance`. Assumes the database was written from this world: the
    world's row lists only grow, and only `activated_at` and open job statuses change.
    """
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await _append_new_rows(conn, world)
            await _apply_updates(conn, world)
    finally:
        await engine.dispose()


async def write_database(world: World, url: str) -> None:
    """(Re)create the product usage schema at `url` and load the world's usage rows."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
            await _append_new_rows(conn, world)
    finally:
        await engine.dispose()
