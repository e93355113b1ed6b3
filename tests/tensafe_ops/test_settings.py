from pathlib import Path

import pytest
from click.testing import CliRunner

from tensafe_ops.cli import main
from tensafe_ops.settings import ConfigError, load_settings, parse_settings, secret_values
from tests.webhook.am import webhook_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    settings = load_settings(None)
    assert settings.exporter.zendesk.first_response_sla["urgent"] == 3600
    assert settings.server.db_url().startswith("sqlite+aiosqlite:///")


def test_unknown_key_is_reported_with_its_location(tmp_path: Path) -> None:
    path = write(tmp_path, "exporter:\n  zendesk:\n    intervall: 30\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert ("exporter.zendesk.intervall", "Extra inputs are not permitted") in err.value.details


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "exporter:\n  stripe:\n    interval: soon\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.details[0][0] == "exporter.stripe.interval"


def test_env_and_file_tags_resolve_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZD_TOKEN", "zd-secret-123")
    (tmp_path / "stripe.key").write_text("sk_live_secret\n")
    path = write(
        tmp_path,
        "exporter:\n  zendesk:\n    token: !env ZD_TOKEN\n"
        f"  stripe:\n    api_key: !file {tmp_path / 'stripe.key'}\n",
    )
    settings = load_settings(path)
    assert settings.exporter.zendesk.token.get_secret_value() == "zd-secret-123"
    assert settings.exporter.stripe.api_key.get_secret_value() == "sk_live_secret"
    assert "zd-secret-123" not in repr(settings)
    assert set(secret_values(settings)) >= {"zd-secret-123", "sk_live_secret"}


def test_missing_env_var_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "exporter:\n  zendesk:\n    token: !env NOT_SET_ANYWHERE_42\n")
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE_42"):
        load_settings(path)


def test_invalid_secret_value_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: sk_live_do_not_print\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "sk_live_do_not_print" not in str(err.value)


def test_health_bands_must_be_ordered(tmp_path: Path) -> None:
    path = write(tmp_path, "exporter:\n  health:\n    at_risk_below: 80\n    watch_below: 50\n")
    with pytest.raises(ConfigError, match="at_risk_below"):
        load_settings(path)


def test_check_config_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    good = write(tmp_path, "server:\n  port: 9100\n")
    result = runner.invoke(main, ["check-config", str(good)])
    assert result.exit_code == 0, result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: -1\n  colour: blue\n")
    result = runner.invoke(main, ["check-config", str(bad)])
    assert result.exit_code == 1
    assert "server.port" in result.output
    assert "server.colour" in result.output


def test_check_config_reports_yaml_syntax_errors(tmp_path: Path) -> None:
    bad = write(tmp_path, "server: [unclosed\n")
    result = CliRunner().invoke(main, ["check-config", str(bad)])
    assert result.exit_code == 1
    assert "invalid YAML" in result.output


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert "tensafe-ops" in result.output


def test_secrets_written_in_the_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PD_KEY", "from-the-environment")
    path = write(
        tmp_path,
        "server:\n  state_db_url: postgresql+asyncpg://ops:hunter22@db/ops\n"
        "exporter:\n  zendesk:\n    token: plain-text-token\n"
        "  pagerduty:\n    token: !env PD_KEY\n"
        "  usage:\n    url: sqlite+aiosqlite:///product.db\n",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    where = {loc for loc, _ in err.value.details}
    assert where == {"server.state_db_url", "exporter.zendesk.token"}
    assert "hunter22" not in str(err.value)
    assert "plain-text-token" not in str(err.value)


def test_secrets_in_nested_destinations_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        "webhook:\n  destinations:\n    slack:\n      incidents:\n"
        "        webhook_url: https://hooks.slack.com/services/T0/B0/secret\n",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.details[0][0] == "webhook.destinations.slack.incidents.webhook_url"


def test_a_malformed_environment_value_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENSAFE_OPS_WEBHOOK__PAGERDUTY_WEBHOOK_SECRETS", "notjson-s3cret")
    result = CliRunner().invoke(main, ["check-config", str(write(tmp_path, "{}\n"))])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "TENSAFE_OPS_WEBHOOK__PAGERDUTY_WEBHOOK_SECRETS" in result.output
    assert "JSON" in result.output
    assert "notjson-s3cret" not in result.output  # the value may be a secret


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "hooks.slack.com/services/T0/B0/x",
        "ftp://hooks.slack.com/x",
        "https:///T0/B0/x",
    ],
)
def test_a_slack_webhook_url_must_be_a_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("SLACK_URL", url)
    path = write(
        tmp_path,
        "webhook:\n  destinations:\n    slack:\n      incidents:\n"
        "        webhook_url: !env SLACK_URL\n",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    [(where, message)] = err.value.details
    assert where == "webhook.destinations.slack.incidents.webhook_url"
    assert "http" in message and url not in message


def test_destination_urls_must_be_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_ROUTING_KEY", "R0UT1NG")
    path = write(
        tmp_path,
        "webhook:\n  destinations:\n    pagerduty:\n      primary:\n"
        "        routing_key: !env PD_ROUTING_KEY\n        events_url: events.pagerduty.com\n",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert any("events_url" in where for where, _ in err.value.details)


def test_server_flags_keep_every_other_section(tmp_path: Path) -> None:
    """`serve --port/--role/...` replace server fields only: every other section, whatever
    sections Settings has, comes through as configured (and is validated again)."""
    configured = webhook_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    configured["operator"] = {"enabled": True, "api_auth": "none"}
    settings = parse_settings({**configured, "demo": True})
    moved = settings.with_server(port=1234, role="webhook")
    assert (moved.server.port, moved.server.role) == (1234, "webhook")
    for name in type(settings).model_fields:
        if name != "server":
            assert getattr(moved, name) == getattr(settings, name), name
            assert getattr(moved, name) != getattr(parse_settings({}), name), name
    with pytest.raises(ConfigError) as err:
        parse_settings({}).with_server(role="webhook")  # the whole is validated again
    assert "webhook.enabled is false" in str(err.value)
