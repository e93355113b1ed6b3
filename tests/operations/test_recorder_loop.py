"""The recorder's loop while the store or Prometheus is away: one plain line per pass, not a
traceback every `record_check_interval`; a bug still shows its traceback."""

import asyncio
import contextlib
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from structlog.testing import capture_logs

from operations import _record_forever


class Failing:
    """Stands in for Operations: `record_due` fails with the given errors, in turn."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.recorder_errors = 0
        self.cfg = SimpleNamespace(record_check_interval=0.01)

    def clock(self) -> datetime:
        return datetime(2026, 11, 30, 23, 0, tzinfo=UTC)

    async def record_due(self, now: datetime) -> None:
        raise self.errors.pop(0) if self.errors else TimeoutError()


async def run_passes(ops: Any, seconds: float = 0.2) -> list[dict[str, Any]]:
    with capture_logs() as logs:
        task = asyncio.create_task(_record_forever(ops))
        await asyncio.sleep(seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return [entry for entry in logs if entry["event"] == "daily_record_failed"]


async def test_an_unavailable_store_is_one_line_per_pass_without_a_traceback() -> None:
    ops = Failing(TimeoutError("state store did not answer within 10 s"), ConnectionError("gone"))
    failed = await run_passes(ops)
    assert len(failed) >= 3 and ops.recorder_errors == len(failed)
    assert all(entry["log_level"] == "warning" and "exc_info" not in entry for entry in failed)
    assert failed[0]["error"] == "TimeoutError: state store did not answer within 10 s"
    assert failed[1]["error"] == "ConnectionError: gone"


async def test_a_bug_in_the_recorder_keeps_its_traceback() -> None:
    failed = await run_passes(Failing(KeyError("summary")))
    assert failed[0]["log_level"] == "error" and failed[0]["exc_info"] is True
    assert failed[1]["log_level"] == "warning"  # then the default: the store timing out
