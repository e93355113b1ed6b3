"""The journal's own deadline: an append not committed within `timeout` fails (the receiver's
503) whether it waits for its commit to begin or sits in a commit that hangs; one that
waited is dropped, one in the commit stays there; nothing is held once appends complete."""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from webhook.journal import Backlog, Entry, Journal, Row

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class GatedJournal(Journal):
    """Commits when the gate is open; records what it committed."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout)
        self.gate = asyncio.Event()
        self.gate.set()
        self.committed: list[str] = []

    async def _insert(self, rows: Sequence[Row]) -> list[int]:
        await self.gate.wait()
        start = len(self.committed) + 1
        self.committed.extend(body for _, body in rows)
        return list(range(start, start + len(rows)))

    # Not used by these tests.
    async def pending(self, limit: int) -> list[Entry]:
        raise NotImplementedError

    async def claim(self, conn: AsyncConnection, entry_ids: Sequence[int]) -> set[int]:
        raise NotImplementedError

    async def forget(self, handled: set[int]) -> None:
        raise NotImplementedError

    async def set_aside(self, entry_id: int, error: str) -> None:
        raise NotImplementedError

    async def record_failure(self, entry_id: int, error: str, give_up_after: int) -> bool:
        raise NotImplementedError

    async def failed(self, limit: int) -> list[tuple[Entry, str]]:
        raise NotImplementedError

    async def retry(self, entry_id: int) -> bool:
        raise NotImplementedError

    async def backlog(self, now: datetime) -> Backlog:
        raise NotImplementedError


async def test_appends_expire_after_the_timeout_whether_waiting_or_in_a_hung_commit() -> None:
    journal = GatedJournal(timeout=0.2)
    journal.gate.clear()  # the database hangs
    in_commit = journal.append("first", NOW)
    await asyncio.sleep(0.05)  # its commit has begun (and hangs)
    waiting = [journal.append(f"behind {i}", NOW) for i in range(3)]
    assert journal.waiting_bytes == len("first") + 3 * len("behind 0")
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(2):  # a regression fails here instead of hanging
        results = await asyncio.gather(in_commit, *waiting, return_exceptions=True)
    took = asyncio.get_running_loop().time() - started
    assert all(isinstance(result, TimeoutError) for result in results)
    assert took < 0.2 + 0.1  # each at its own deadline, not one timeout after another
    # The waiting ones were dropped; the hung commit still holds its one body.
    assert journal.waiting_bytes == len("first")
    journal.gate.set()  # the database answers again
    await journal.flush()
    assert journal.committed == ["first"]  # a duplicate of the sender's retry: ingest skips it
    assert journal.waiting_bytes == 0
    assert await journal.append("later", NOW) == 2
    await journal.close()


async def test_completed_appends_leave_nothing_behind() -> None:
    journal = GatedJournal(timeout=10)
    for burst in range(5):
        ids = await asyncio.gather(*(journal.append(f"{burst}-{i}", NOW) for i in range(50)))
        assert ids == list(range(burst * 50 + 1, burst * 50 + 51))
    assert len(journal._deadlines) == 0 and journal.waiting_bytes == 0
    await journal.close()
    assert journal._watchdog is None


async def test_a_client_that_goes_away_drops_its_waiting_append() -> None:
    journal = GatedJournal(timeout=10)
    journal.gate.clear()
    journal.append("in the commit", NOW)
    await asyncio.sleep(0.01)
    gone = journal.append("client gone", NOW)
    gone.cancel()
    await asyncio.sleep(0)
    journal.gate.set()
    await journal.flush()
    assert journal.committed == ["in the commit"]
    with pytest.raises(asyncio.CancelledError):
        await gone
    await journal.close()
