"""The README's morning routine is what tensafe-admin prints today: each command it shows runs
against the demo world with a real Prometheus, and every table's title and columns and every
Markdown heading the README shows are in that command's output (values change, the shape may
not drift from the README)."""

import re
import shlex
from pathlib import Path
from typing import Any

from tensafe_ops.sandbox.server import RunningWorld
from tests.admin.test_cli import cli_for
from tests.operations.conftest import demo_with_prometheus
from tests.operations.stack import Product

README = Path(__file__).parents[2] / "README.md"
RULE = re.compile(r"^\s*━+\s*$")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
DIGITS = re.compile(r"\d+")
LIGHT = re.compile(r": (GREEN|YELLOW|RED|UNKNOWN)$")


def routine() -> list[tuple[str, list[str]]]:
    """(command, the output lines the README shows) for each `$ tensafe-admin ...`."""
    text = README.read_text()
    start = text.index("**The morning routine**")
    block = text[text.index("```text\n", start) + len("```text\n") :]
    block = block[: block.index("\n```\n")]
    shown: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ tensafe-admin "):
            shown.append((line.removeprefix("$ tensafe-admin "), []))
        else:
            shown[-1][1].append(line)
    return shown


def skeleton(lines: list[str]) -> list[str]:
    """What must not drift: tables' column headers (the line above a rule) and titles (the
    line above those and a blank), Markdown headings; dates and check marks left out."""
    kept = []
    for index, line in enumerate(lines):
        if index + 1 < len(lines) and RULE.match(lines[index + 1]):
            kept.append(" ".join(line.split()))
            if index >= 2 and not lines[index - 1].strip():
                title = DIGITS.sub("N", DATE.sub("DAY", lines[index - 2]))  # counts vary
                kept.append(" ".join(title.split()))
        elif line.rstrip().endswith(": none"):  # a table without rows says so
            kept.append(" ".join(DIGITS.sub("N", line.rstrip().removesuffix(": none")).split()))
        elif line.startswith("#"):
            heading = LIGHT.sub("", DATE.sub("DAY", line)).rstrip(" ✅❌⬜❔:")
            kept.append(heading)
    return kept


def test_the_routine_is_in_the_readme() -> None:
    commands = [command.split(" -o ")[0] for command, _ in routine()]
    assert commands == [
        "status --quick",
        'incidents list --since "8 hours ago"',
        "metrics morning-snapshot",
        "support summary",
        "customers at-risk --limit 5",
        "customers enterprise-status",
        "pulse",
        "capacity",
        "metrics daily-summary",
        "oncall handoff --shift night",
        "checklist",
    ]


async def test_readme_routine_matches_what_the_commands_print(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    async with demo_with_prometheus(aiohttp_client, demo_world, tmp_path, Product()) as demo:
        client = demo.client
        cli = cli_for(client)
        for command, shown in routine():
            result = await cli(*shlex.split(command))
            allowed = {0, 1, 2, 3} if command.startswith("status") else {0}
            assert result.exit_code in allowed, (command, result.stderr)
            printed = result.stdout.splitlines()
            expected, got = skeleton(shown), skeleton(printed)
            assert expected, command
            missing = [line for line in expected if line not in got]
            assert not missing, (command, missing, result.stdout)
