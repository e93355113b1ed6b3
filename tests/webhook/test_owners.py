"""Destination ownership on PostgreSQL: one replica at a time, lost with its connection, taken
over by another; and the outbox channel telling owners where deliveries were added."""

import asyncio
from collections.abc import AsyncIterator, Iterable

import asyncpg  # type: ignore[import-untyped]
import pytest

from tensafe_ops.storage import create_engine, migrate
from tests.webhook.am import until
from webhook.outbox import Target
from webhook.owners import (
    OWNER_LOCK_CLASS,
    PgOwners,
    announce_destinations,
    asyncpg_dsn,
    lock_key,
)

Heard = list[tuple[Target, str]]


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[tuple[PgOwners, PgOwners, Heard, str]]:
    engine = create_engine(pg_url)
    await migrate(engine)
    dsn = asyncpg_dsn(engine)
    heard: Heard = []

    def hear(destinations: Iterable[tuple[Target, str]]) -> None:
        heard.extend(destinations)

    first, second = PgOwners(dsn, hear, heartbeat=0.2), PgOwners(dsn, lambda _: None)
    for owners in (first, second):
        await owners.start()
    yield first, second, heard, pg_url
    for owners in (first, second):
        await owners.close()
    await engine.dispose()


async def test_one_replica_at_a_time_and_the_other_takes_over_when_it_dies(
    replicas: tuple[PgOwners, PgOwners, Heard, str],
) -> None:
    first, second, _, pg_url = replicas
    assert await first.acquire("slack", "alerts", retry=False) == "taken"
    assert await first.acquire("slack", "alerts", retry=False) == "held"
    assert await second.acquire("slack", "alerts", retry=True) == "other"
    assert await second.acquire("slack", "incidents", retry=False) == "taken"  # per destination
    assert first.owned() == {("slack", "alerts")}

    # The database ends the first replica's session (as when its process is killed).
    admin = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = $1 AND objid = $2 AND objsubid = 2",
            OWNER_LOCK_CLASS,
            lock_key("slack", "alerts") & 0xFFFFFFFF,  # shown unsigned
        )
    finally:
        await admin.close()
    await until(lambda: not first.holds("slack", "alerts"))  # it knows at once: no more sends
    assert first.owned() == set()
    # Not asked again on every wake-up; the periodic look (retry) takes it over.
    assert await second.acquire("slack", "alerts", retry=False) == "other"
    assert await second.acquire("slack", "alerts", retry=True) == "taken"
    assert await first.acquire("slack", "alerts", retry=True) == "other"


class FreezableProxy:
    """A TCP proxy to PostgreSQL on loopback whose traffic can be stopped (a network cut)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_replica_cut_off_from_the_database_gives_its_destinations_up(
    pg_url: str,
) -> None:
    """Before the database can let another replica have them: no two replicas ever both
    believe they send to a destination."""
    engine = create_engine(pg_url)
    await migrate(engine)
    url = engine.url
    proxy = FreezableProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(drivername="postgresql", port=await proxy.start())
    owners = PgOwners(proxied.render_as_string(hide_password=False), lambda _: None, heartbeat=0.2)
    await owners.start()
    try:
        assert await owners.acquire("pagerduty", "default", retry=False) == "taken"
        proxy.flowing.clear()  # the network between this replica and the database is cut
        await until(lambda: not owners.holds("pagerduty", "default"))
        assert owners.owned() == set()
        assert await owners.acquire("pagerduty", "default", retry=True) == "other"
    finally:
        await owners.close()
        await proxy.close()
        await engine.dispose()


async def test_owners_hear_where_deliveries_were_added_once_committed(
    replicas: tuple[PgOwners, PgOwners, Heard, str],
) -> None:
    first, _, heard, pg_url = replicas
    await first.acquire("slack", "alerts", retry=False)  # connects: listening from now on
    engine = create_engine(pg_url)
    try:
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await announce_destinations(conn, [("slack", "rolled-back")])
                raise RuntimeError("the ingest transaction failed")
        async with engine.begin() as conn:
            await announce_destinations(conn, [("pagerduty", "default"), ("slack", "alerts")])
    finally:
        await engine.dispose()
    await until(lambda: len(heard) == 2)
    assert sorted(heard) == [("pagerduty", "default"), ("slack", "alerts")]
