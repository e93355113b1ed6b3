"""Which replica sends to which destination, so vendor rate limits hold for the deployment.

A vendor's limit is per destination (a Slack webhook, a PagerDuty routing key, a Zendesk
account), not per process: two replicas each pacing at the limit together send twice it and
collect 429s. So with PostgreSQL one replica at a time sends to a destination. It holds a
session-level advisory lock for it (`pg_try_advisory_lock`) on a connection of its own, and
keeps it for as long as it lives: its rate limiter, 429 penalties included, is the whole
deployment's. The lock dies with that connection — a replica killed, or cut off from the
database, loses its destinations at once, and another replica takes each over at its next look
at the outbox (`dispatch.poll_interval`), releasing the dead one's leases on the spot rather
than waiting for them to run out (`Outbox.take_over`).

The same connection LISTENs on `CHANNEL`: the replica that ingests a notification NOTIFYs (in
its ingest transaction, so only once committed) the destinations it added deliveries for, and
their owners drain them at once, whichever replica ingested them.

Losing the lock without noticing would let two replicas send, so the connection is checked
every `HEARTBEAT` seconds (a replica that cannot reach the database gives its destinations up
before the database lets anyone else have them), the server drops a silent client after
`idle_session_timeout` (a stalled process cannot keep its destinations) and TCP keepalives
(a vanished host); a drain loop checks `holds` before every send.

With SQLite there is one process per database: every destination is its own (`LocalOwners`).
"""

import asyncio
import contextlib
import os
import socket
import zlib
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tensafe_ops.log import get_logger
from webhook.outbox import Target

log = get_logger("tensafe_ops.webhook.owners")

CHANNEL = "tensafe_ops_outbox"
OWNER_LOCK_CLASS = 0x7E5AFE + 2
"""First key of the two-key advisory locks (the migration and ingest locks use one key)."""
HEARTBEAT = 5.0
"""Seconds between checks that the lock connection is alive."""
IDLE_SESSION_TIMEOUT_MS = 20_000
"""The server ends our lock session after this much silence (heartbeats stopped)."""
RECONNECT_AFTER = 1.0
CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

Acquired = Literal["held", "taken", "other"]
"""Already ours; newly ours (whoever had it is gone); another replica's."""
Announce = Callable[[Iterable[tuple[Target, str]]], None]


class Owners(Protocol):
    async def acquire(self, target: Target, destination: str, *, retry: bool) -> Acquired:
        """Make this replica the destination's sender if no other replica is. A destination
        another replica had is only asked about again with `retry` (the periodic look), not
        on every wake-up."""
        ...

    def holds(self, target: Target, destination: str) -> bool:
        """Still ours (checked before every send)."""
        ...

    def owned(self) -> set[tuple[Target, str]]: ...

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Give every destination up (after the last send has finished)."""
        ...


class LocalOwners:
    """One process per database (SQLite, tests): every destination is ours."""

    def __init__(self) -> None:
        self._seen: set[tuple[Target, str]] = set()

    async def acquire(self, target: Target, destination: str, *, retry: bool) -> Acquired:
        self._seen.add((target, destination))
        return "held"

    def holds(self, target: Target, destination: str) -> bool:
        return True

    def owned(self) -> set[tuple[Target, str]]:
        return set(self._seen)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


def lock_key(target: str, destination: str) -> int:
    """The second key of a destination's advisory lock: a signed 32-bit hash. Two
    destinations that collide simply share an owner."""
    value = zlib.crc32(f"{target}:{destination}".encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def asyncpg_dsn(engine: AsyncEngine) -> str:
    """The engine's URL as a plain asyncpg DSN (password included)."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PgOwners:
    """Destination locks and the outbox channel on one dedicated asyncpg connection."""

    def __init__(self, dsn: str, announce: Announce, *, heartbeat: float = HEARTBEAT) -> None:
        self.dsn = dsn
        self.announce = announce
        self.heartbeat = heartbeat
        self._conn: asyncpg.Connection | None = None
        self._mine: set[tuple[Target, str]] = set()
        self._others: set[tuple[Target, str]] = set()
        self._using = asyncio.Lock()  # an asyncpg connection runs one query at a time
        self._next_connect = 0.0
        self._beat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._beat = asyncio.create_task(self._heartbeat(), name="webhook-owners-heartbeat")

    async def close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        async with self._using:
            await self._drop("closed")

    def holds(self, target: Target, destination: str) -> bool:
        return self._conn is not None and (target, destination) in self._mine

    def owned(self) -> set[tuple[Target, str]]:
        return set(self._mine) if self._conn is not None else set()

    async def acquire(self, target: Target, destination: str, *, retry: bool) -> Acquired:
        key = (target, destination)
        if self.holds(target, destination):
            return "held"
        if key in self._others and not retry:
            return "other"
        async with self._using:
            conn = await self._connection()
            if conn is None:
                return "other"  # no database: nobody can be sure to be alone, so nobody sends
            try:
                got = await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1, $2)",
                    OWNER_LOCK_CLASS,
                    lock_key(target, destination),
                    timeout=self.heartbeat,
                )
            except CONNECTION_ERRORS as exc:
                await self._drop(f"lock request failed ({type(exc).__name__})")
                return "other"
        if not got:
            self._others.add(key)
            return "other"
        self._others.discard(key)
        self._mine.add(key)
        log.info("destination_taken", target=target, destination=destination)
        return "taken"

    async def _connection(self) -> asyncpg.Connection | None:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        if self._conn is not None:
            await self._drop("connection lost")
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_connect:
            return None
        self._next_connect = loop.time() + RECONNECT_AFTER
        try:
            conn = await asyncpg.connect(
                self.dsn,
                timeout=self.heartbeat,
                server_settings={
                    "application_name": f"tensafe-ops {socket.gethostname()}:{os.getpid()}",
                    # A host that vanished without closing the socket is noticed too.
                    "tcp_keepalives_idle": "10",
                    "tcp_keepalives_interval": "5",
                    "tcp_keepalives_count": "3",
                },
            )
        except CONNECTION_ERRORS as exc:
            log.warning("owner_connection_failed", error=type(exc).__name__)
            return None
        with contextlib.suppress(asyncpg.PostgresError):  # PostgreSQL >= 14
            await conn.execute(f"SET idle_session_timeout = {IDLE_SESSION_TIMEOUT_MS}")
        await conn.add_listener(CHANNEL, self._heard)
        conn.add_termination_listener(self._terminated)
        self._conn = conn
        self._others.clear()
        return conn

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        target, _, destination = payload.partition(":")
        if target and destination:
            self.announce([(target, destination)])  # type: ignore[list-item]

    def _terminated(self, conn: object) -> None:
        if conn is self._conn:
            self._lost("connection closed")

    def _lost(self, why: str) -> None:
        if self._mine:
            log.warning("destinations_lost", reason=why, destinations=len(self._mine))
        self._mine.clear()
        self._others.clear()
        self._conn = None

    async def _drop(self, why: str) -> None:
        conn = self._conn
        self._lost(why)
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), self.heartbeat)
            if not conn.is_closed():
                conn.terminate()

    async def _heartbeat(self) -> None:
        """Give the destinations up as soon as the database cannot be reached, so that two
        replicas never both believe they hold one."""
        while True:
            await asyncio.sleep(self.heartbeat)
            async with self._using:
                if self._conn is None:
                    continue
                try:
                    await self._conn.fetchval("SELECT 1", timeout=self.heartbeat)
                except CONNECTION_ERRORS as exc:
                    await self._drop(f"heartbeat failed ({type(exc).__name__})")


def open_owners(engine: AsyncEngine, announce: Announce) -> Owners:
    if engine.dialect.name == "postgresql":
        return PgOwners(asyncpg_dsn(engine), announce)
    return LocalOwners()


async def announce_destinations(
    conn: AsyncConnection, destinations: Iterable[tuple[Target, str]]
) -> None:
    """Inside an ingest transaction on PostgreSQL: tell every replica's owners, on commit,
    where deliveries were added (NOTIFY is transactional and deduplicated per transaction)."""
    payloads = sorted(f"{target}:{destination}" for target, destination in destinations)
    if conn.dialect.name != "postgresql" or not payloads:
        return
    await conn.execute(
        sa.text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p"),
        {"channel": CHANNEL, "payloads": payloads},
    )
