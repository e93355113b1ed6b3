import asyncio
from typing import Any

import pytest

from tensafe_ops.storage import StateStore, create_engine, migrate, within


async def test_state_store_roundtrip(state_db_url: str) -> None:
    engine = create_engine(state_db_url)
    await migrate(engine)
    await migrate(engine)  # idempotent: a second replica or restart migrates again
    store = StateStore(engine)
    try:
        await store.put("zendesk.cursor", "tickets", {"after": "abc"})
        await store.put_many("zendesk.ticket", {str(i): {"p": "high"} for i in range(1200)})
        await store.put("zendesk.cursor", "tickets", {"after": "def"})
        assert await store.get("zendesk.cursor", "tickets") == {"after": "def"}
        assert len(await store.get_all("zendesk.ticket")) == 1200
        await store.delete_many("zendesk.ticket", [str(i) for i in range(1000)])
        assert len(await store.get_all("zendesk.ticket")) == 200
        await store.replace_namespace("zendesk.ticket", {"x": 1})
        assert await store.get_all("zendesk.ticket") == {"x": 1}
        assert await store.get("nothing", "here") is None
    finally:
        await engine.dispose()


@pytest.mark.parametrize("steps", range(1, 6))
async def test_a_cancelled_caller_of_within_is_cancelled_whenever_the_call_ends(
    steps: int,
) -> None:
    """A loop cancelled at shutdown stops, even when its database call ends in the same step
    (Python 3.11's wait_for then returned the result and the loop went on running)."""
    keep: set[asyncio.Task[Any]] = set()

    async def call() -> int:
        return 1

    caller = asyncio.create_task(within(call(), 10, keep))
    for _ in range(steps):
        await asyncio.sleep(0)
    if caller.cancel():  # not finished yet
        with pytest.raises(asyncio.CancelledError):
            await caller
    else:
        assert await caller == 1
    assert keep == set()


async def test_within_gives_up_waiting_but_lets_the_call_finish() -> None:
    keep: set[asyncio.Task[Any]] = set()
    finish = asyncio.Event()

    async def call() -> str:
        await finish.wait()
        return "stored"

    with pytest.raises(TimeoutError):
        await within(call(), 0.01, keep)
    [task] = keep
    finish.set()
    assert await task == "stored"
    assert keep == set()
