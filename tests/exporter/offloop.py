"""A call-through spy showing that a source's computation runs off the event loop."""

import asyncio
import threading
from collections.abc import Callable
from typing import Any


class OffLoopSpy:
    """Calls through to `func`, recording the thread of every call.

    A call made off the loop's thread first has the loop run `meanwhile` (e.g. change the
    source's live state, as a later sync could) and waits for it, so the result also shows
    whether the thread was given data of its own. Create it inside the test's event loop.
    """

    def __init__(self, func: Callable[..., Any], meanwhile: Callable[[], object] | None = None):
        self.func = func
        self.meanwhile = meanwhile
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.threads: list[int] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        thread = threading.get_ident()
        self.threads.append(thread)
        if thread != self.loop_thread and self.meanwhile is not None:
            done = threading.Event()
            meanwhile = self.meanwhile

            def run() -> None:
                meanwhile()
                done.set()

            self.loop.call_soon_threadsafe(run)
            # A bound, not a timing: the loop is idle while the refresh awaits this thread.
            assert done.wait(timeout=30), "the event loop did not run while the thread computed"
        return self.func(*args, **kwargs)

    @property
    def ran_off_loop(self) -> bool:
        """Called at least once, and never on the event loop's thread."""
        return bool(self.threads) and self.loop_thread not in self.threads
