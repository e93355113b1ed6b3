"""tensafe-admin's settings (flags, environment, config file), its time parsing and display,
and the installed console script."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from tensafe_admin import timefmt
from tensafe_admin.client import AdminError, resolve

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def test_flags_beat_environment_beat_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'url = "http://file:1"\ntoken = "file-token"\nprometheus_url = "http://prom:9090"\n'
        'tz = "Europe/Berlin"\n'
    )
    monkeypatch.setenv("TENSAFE_ADMIN_CONFIG", str(config))
    for name in ("TENSAFE_ADMIN_URL", "TENSAFE_ADMIN_TOKEN", "PROMETHEUS_URL", "TENSAFE_ADMIN_TZ"):
        monkeypatch.delenv(name, raising=False)
    from_file = resolve(None, None, None, None)
    assert (from_file.url, from_file.token, from_file.prometheus_url, from_file.tz) == (
        "http://file:1",
        "file-token",
        "http://prom:9090",
        "Europe/Berlin",
    )
    monkeypatch.setenv("TENSAFE_ADMIN_URL", "http://env:2/")
    monkeypatch.setenv("TENSAFE_ADMIN_TOKEN", "env-token")
    from_env = resolve(None, None, None, None)
    assert (from_env.url, from_env.token) == ("http://env:2", "env-token")
    from_flags = resolve("http://flag:3", "flag-token", None, "UTC")
    assert (from_flags.url, from_flags.token, from_flags.tz) == (
        "http://flag:3",
        "flag-token",
        "UTC",
    )
    config.write_text('url = "http://file:1"\ncolour = "blue"\n')
    with pytest.raises(AdminError, match="unknown keys colour"):
        resolve(None, None, None, None)
    monkeypatch.setenv("TENSAFE_ADMIN_CONFIG", str(tmp_path / "missing.toml"))
    monkeypatch.delenv("TENSAFE_ADMIN_URL")
    assert resolve(None, None, None, None).url == "http://127.0.0.1:9877"


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("8 hours ago", "8h"),
        ("8h", "8h"),
        ("90 minutes ago", "90m"),
        ("2 days ago", "2d"),
        ("1 week ago", "7d"),
        ("45s", "45s"),
        ("2026-11-27T08:00", "2026-11-27T07:00:00Z"),  # in --tz (Berlin, UTC+1)
        ("2026-11-27T08:00:00Z", "2026-11-27T08:00:00Z"),
    ],
)
def test_since_is_sent_as_a_duration_or_a_utc_time(text: str, sent: str) -> None:
    assert timefmt.since(text, BERLIN) == sent


def test_moments_and_durations() -> None:
    assert timefmt.moment("now", UTC, NOW) == NOW
    assert timefmt.moment("+2h", UTC, NOW) == NOW + timedelta(hours=2)
    assert timefmt.moment("in 30 minutes", UTC, NOW) == NOW + timedelta(minutes=30)
    assert timefmt.moment("2026-11-28T02:00", BERLIN, NOW) == datetime(2026, 11, 28, 1, tzinfo=UTC)
    assert timefmt.duration("2h") == timedelta(hours=2)
    with pytest.raises(ValueError, match="as a duration"):
        timefmt.duration("2 hours ago")
    with pytest.raises(ValueError, match="as a time"):
        timefmt.moment("tomorrowish", UTC, NOW)


def test_times_are_shown_in_the_operators_zone() -> None:
    assert timefmt.local("2026-11-27T08:00:00Z", BERLIN) == "2026-11-27 09:00 CET"
    assert timefmt.local("2026-07-01T08:00:00Z", BERLIN) == "2026-07-01 10:00 CEST"
    assert timefmt.local(None, BERLIN) == "-"
    assert timefmt.zone("UTC") is UTC
    with pytest.raises(ValueError, match="unknown time zone"):
        timefmt.zone("Mars/Olympus")
    assert (timefmt.ago(42), timefmt.ago(3600), timefmt.ago(86400 * 3)) == (
        "42s",
        "60 min",
        "3.0 d",
    )


def test_the_console_script_is_installed_and_needs_nothing_of_the_service() -> None:
    script = Path(sys.executable).parent / "tensafe-admin"
    shown = subprocess.run(
        [str(script), "status", "--help"], capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0
    assert "tensafe-admin status --quick" in shown.stdout  # the example
    assert "--output [table|json|markdown]" in shown.stdout
    down = subprocess.run(
        [str(script), "status", "--quick", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        check=False,
    )
    assert down.returncode == 3
    assert down.stderr == (
        "tensafe-admin: cannot reach tensafe-ops at http://127.0.0.1:9 (ConnectError): "
        "status unknown\n"
    )
    # A pure HTTP client: importing it loads no module of the service.
    probe = (
        "import sys, tensafe_admin.cli\n"
        "service = [m for m in sys.modules if m.split('.')[0] in "
        "('tensafe_ops', 'exporter', 'webhook', 'operations', 'aiohttp', 'sqlalchemy')]\n"
        "print(service)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_the_config_file_is_read_from_the_users_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "TENSAFE_ADMIN_CONFIG",
        "XDG_CONFIG_HOME",
        "TENSAFE_ADMIN_URL",
        "TENSAFE_ADMIN_TOKEN",
        "PROMETHEUS_URL",
        "TENSAFE_ADMIN_TZ",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / ".config" / "tensafe-admin" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('url = "https://tensafe-ops.internal:9877"\ntoken = "t0k"\n')
    settings = resolve(None, None, None, None)
    assert (settings.url, settings.token) == ("https://tensafe-ops.internal:9877", "t0k")
