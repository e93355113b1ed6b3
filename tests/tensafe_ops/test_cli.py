"""The CLI answers --version and --help without loading the service."""

import json
import subprocess
import sys

import pytest

from tensafe_ops import __version__

HEAVY = ("aiohttp", "exporter", "webhook", "sqlalchemy", "pydantic", "structlog", "asyncio")
"""Packages the service needs and a quick answer does not."""

_PROBE = """
import json, sys
from tensafe_ops.cli import main
try:
    main(sys.argv[1:], prog_name="tensafe-ops")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def run_cli(*args: str) -> tuple[str, set[str]]:
    """Run the CLI in a fresh interpreter: (its stdout, top-level packages it had loaded)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    modules = json.loads(done.stderr.strip().splitlines()[-1])
    return done.stdout, {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    "args", [("--version",), ("--help",), ("serve", "--help"), ("sandbox", "--help")]
)
def test_quick_answers_load_nothing_of_the_service(args: tuple[str, ...]) -> None:
    out, loaded = run_cli(*args)
    assert out.strip()
    assert not loaded & set(HEAVY), f"{' '.join(args)} imported {sorted(loaded & set(HEAVY))}"


def test_version_names_the_release() -> None:
    out, _ = run_cli("--version")
    assert out.strip() == f"tensafe-ops, version {__version__}"


def test_check_config_still_loads_what_it_needs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  port: 9877\n")
    out, loaded = run_cli("check-config", str(config))
    assert out.strip() == f"{config}: configuration is valid"
    assert "pydantic" in loaded
