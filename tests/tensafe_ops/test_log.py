import json
from collections.abc import Iterator

import pytest
import structlog

from tensafe_ops.log import get_logger, register_secrets, setup_logging
from tests.conftest import TEST_LOGGING


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    # setup_logging binds the (captured) stderr of this test; later tests must not write to it.
    # They get the suite's logging back (tests/conftest.py: plain tracebacks).
    yield
    structlog.reset_defaults()
    structlog.configure(**TEST_LOGGING)


def test_secrets_are_masked_in_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json")
    register_secrets(["hunter2-secret-token"])
    log = get_logger("test")
    log.warning(
        "upstream failed",
        error="401 for token hunter2-secret-token",
        url="https://x/?key=hunter2-secret-token",
        exc=ValueError("bad hunter2-secret-token"),
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "hunter2-secret-token" not in line
    event = json.loads(line)
    assert event["error"] == "401 for token ***"
    assert event["level"] == "warning"
