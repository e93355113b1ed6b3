"""tensafe-admin's tests run against the demo world the operator API's tests use."""

from collections.abc import Iterator

import pytest
import structlog

from tensafe_ops.log import setup_logging
from tests.test_demo import demo_world

__all__ = ["demo_world"]


@pytest.fixture(autouse=True)
def service_logs_apart() -> Iterator[None]:
    """The service (in this process) logs to the stderr of now, as `serve` does, so its lines
    never land in the output CliRunner captures for the CLI."""
    setup_logging("console")
    yield
    structlog.reset_defaults()
