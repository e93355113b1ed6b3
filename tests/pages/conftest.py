"""Where the browser tests' screenshots go, said at the end of the run so a person (or CI's
log) can find the artifacts."""

import os
from pathlib import Path

import pytest

SHOTS_KEY = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def shots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`screenshots/` in pytest's base tmp directory (pytest keeps the last three runs'), or
    $TENSAFE_SCREENSHOTS when set."""
    wanted = os.environ.get("TENSAFE_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    request.config.stash[SHOTS_KEY] = folder
    return folder


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    folder = config.stash.get(SHOTS_KEY, None)
    if folder is None:
        return
    count = len(list(folder.glob("*.png")))
    terminalreporter.write_line(f"status pages' screenshots: {count} PNG files in {folder}")
