"""The simulated product usage database: a churn-risk mix, bounded size, and incremental sync."""

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from exporter.config import HealthConfig
from exporter.health import score_accounts
from tensafe_ops.sandbox import world as sandbox_world
from tensafe_ops.sandbox.usage_world import TABLES, sync_database, write_database
from tests.conftest import DATABASES, database_url

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request, tmp_path, "usage.db")


async def table_counts(url: str) -> dict[str, int]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        counts = {
            table: (await conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}"))).scalar_one()
            for table in TABLES
        }
    await engine.dispose()
    return counts


async def scalar(url: str, sql: str) -> Any:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        value = (await conn.execute(sa.text(sql))).scalar_one()
    await engine.dispose()
    return value


def test_generation_is_deterministic_and_matches_the_accounts() -> None:
    world = sandbox_world.generate(7, now=NOW)
    again = sandbox_world.generate(7, now=NOW)
    assert world.usage == again.usage
    assert [a["account_id"] for a in world.usage["accounts"]] == [a.id for a in world.accounts]
    seated = Counter(s["account_id"] for s in world.usage["seats"] if s["removed_at"] is None)
    assert all(seated[a.id] == a.seats for a in world.accounts)
    user_ids = [u["user_id"] for u in world.usage["users"]]
    assert len(set(user_ids)) == len(user_ids)
    assert {c["user_id"] for c in world.usage["api_calls"]} <= set(user_ids)
    # Bounded volume: a few calls per calling user per day, at most 5 callers per account.
    assert len(world.usage["api_calls"]) < 300 * 5 * 30 * 1.2


def test_churn_risk_mix() -> None:
    world = sandbox_world.generate(42, now=NOW)
    last_call: dict[str, float] = {}
    for call in world.usage["api_calls"]:
        at = datetime.fromisoformat(call["called_at"]).timestamp()
        last_call[call["account_id"]] = max(at, last_call.get(call["account_id"], at))
    removed = Counter(
        s["account_id"]
        for s in world.usage["seats"]
        if s["removed_at"] and datetime.fromisoformat(s["removed_at"]) >= NOW - timedelta(days=30)
    )
    usage = {
        a.id: {
            "last_api_call": last_call.get(a.id),
            "seats": a.seats,
            "seats_removed_30d": removed[a.id],
            "tier": a.tier,
            "name": a.name,
        }
        for a in world.accounts
    }
    scores = score_accounts(zendesk=None, stripe=None, usage=usage, cfg=HealthConfig(), now=NOW)
    signals = Counter(p.signal for h in scores.values() for p in h.penalties)
    assert signals["no_api_calls_7d"] >= 10
    assert signals["no_api_calls_3d"] >= 10
    assert signals["seats_removed"] >= 10
    assert signals["seats_removed_quarter"] >= 5
    assert sum(1 for a in world.accounts if a.id not in last_call) >= 1  # never called
    healthy = sum(1 for h in scores.values() if not h.penalties)
    assert healthy > len(world.accounts) / 2


async def test_write_is_fast_and_complete(db_url: str) -> None:
    world = sandbox_world.generate(42, now=NOW)
    started = time.monotonic()
    await write_database(world, db_url)
    assert time.monotonic() - started < 5  # ~0.5 s on a laptop; CI machines are slower
    assert await table_counts(db_url) == {t: len(world.usage[t]) for t in TABLES}
    # Writing again replaces the previous contents instead of duplicating them.
    await write_database(world, db_url)
    assert (await table_counts(db_url))["api_calls"] == len(world.usage["api_calls"])


async def test_advance_and_sync_bring_new_usage_into_the_database(db_url: str) -> None:
    world = sandbox_world.generate(3, sandbox_world.WorldSize(accounts=60), now=NOW)
    await write_database(world, db_url)
    before = await table_counts(db_url)
    open_jobs = "SELECT COUNT(*) FROM training_jobs WHERE status IN ('queued', 'running')"
    since = NOW.strftime("%Y-%m-%d %H:%M:%S+00")  # compares right as SQLite text and as PG time

    sandbox_world.advance(world, NOW + timedelta(hours=24))
    await sync_database(world, db_url)

    after = await table_counts(db_url)
    assert after == {t: len(world.usage[t]) for t in TABLES}
    assert after["api_calls"] > before["api_calls"]
    assert after["training_jobs"] > before["training_jobs"]
    assert after["users"] > before["users"]
    new_calls = f"SELECT COUNT(*) FROM api_calls WHERE called_at > '{since}'"
    assert await scalar(db_url, new_calls) == after["api_calls"] - before["api_calls"]
    # Job status changes made by advance reached the database too.
    in_world = sum(1 for j in world.usage["training_jobs"] if j["status"] in ("queued", "running"))
    assert await scalar(db_url, open_jobs) == in_world
    activated = sum(1 for u in world.usage["users"] if u["activated_at"] is not None)
    assert await scalar(db_url, "SELECT COUNT(activated_at) FROM users") == activated

    # Syncing again without a change writes nothing new.
    await sync_database(world, db_url)
    assert await table_counts(db_url) == after


async def test_a_world_file_scenario_keeps_quiet_accounts_quiet(tmp_path: Path) -> None:
    world = sandbox_world.World(now=NOW, rng=random.Random(1))
    world.usage = {
        "seats": [
            {"account_id": "acct_busy", "user_id": 1, "added_at": "2026-01-01", "removed_at": None},
            {"account_id": "acct_idle", "user_id": 2, "added_at": "2026-01-01", "removed_at": None},
        ],
        "api_calls": [
            # YAML hands over timestamps it parsed itself as datetimes.
            {"account_id": "acct_busy", "user_id": 1, "called_at": NOW - timedelta(hours=1),
             "endpoint": "/v1/models"},
            {"account_id": "acct_idle", "user_id": 2, "called_at": "2026-11-19T12:00:00Z",
             "endpoint": "/v1/models"},
        ],
    }  # fmt: skip
    url = f"sqlite+aiosqlite:///{tmp_path / 'usage.db'}"
    await write_database(world, url)
    sandbox_world.advance(world, NOW + timedelta(days=2))
    await sync_database(world, url)
    callers = Counter(c["account_id"] for c in world.usage["api_calls"])
    assert callers["acct_busy"] > 1  # ~1.2 calls a day from its one user
    assert callers["acct_idle"] == 1
    assert (await table_counts(url))["api_calls"] == len(world.usage["api_calls"])
