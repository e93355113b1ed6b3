"""The demo clocks: a world's clock starts at its `now` and advances, or stands still."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from click.testing import CliRunner

from tensafe_ops.cli import main
from tensafe_ops.clock import demo_clock, utcnow, world_clock

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Elapsed:
    def __init__(self) -> None:
        self.seconds = 100.0

    def __call__(self) -> float:
        return self.seconds


def test_a_world_clock_starts_at_the_worlds_now_and_advances_from_there() -> None:
    elapsed = Elapsed()
    clock = world_clock(START, elapsed=elapsed)
    assert clock() == START
    elapsed.seconds += 3600
    assert clock() == START + timedelta(hours=1)


def test_a_frozen_world_clock_stands_still() -> None:
    elapsed = Elapsed()
    clock = demo_clock(START, "world", frozen=True, elapsed=elapsed)
    elapsed.seconds += 86400
    assert clock() == START


def test_the_wall_clock_ignores_the_worlds_now() -> None:
    assert demo_clock(START, "wall") is utcnow
    wall = demo_clock(START, "wall", frozen=True)  # frozen world, real time: ages still grow
    assert abs(wall() - datetime.now(UTC)) < timedelta(seconds=5)


def test_frozen_and_clock_need_demo(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"server": {"state_dir": str(tmp_path)}}))
    for flags in (["--frozen"], ["--clock", "wall"]):
        result = CliRunner().invoke(main, ["serve", "--config", str(config), *flags])
        assert result.exit_code == 2
        assert "only make sense with --demo" in result.output
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--clock", "moon"])
    assert result.exit_code == 2 and "'moon' is not one of 'world', 'wall'" in result.output
