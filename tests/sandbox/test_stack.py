"""The Prometheus/Alertmanager files the demo recipe and the end-to-end test run."""

import subprocess
from pathlib import Path

import pytest
import yaml

from tensafe_ops.sandbox import stack
from tests.conftest import require_binary

TARGETS = stack.Targets(
    service="127.0.0.1:9877",
    product="127.0.0.1:40001",
    prometheus="127.0.0.1:9090",
    alertmanagers=("127.0.0.1:9093", "127.0.0.1:9094"),
    pagerduty_events_url="http://127.0.0.1:40002/v2/enqueue",
    cluster_ports=(9194, 9195),
)


def rules_by_name(directory: Path) -> dict[str, dict[str, object]]:
    found = {}
    for path in sorted(directory.glob("*.yaml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found[f"{rule.get('alert') or rule['record']}{rule.get('labels')}"] = rule
    return found


@pytest.mark.parametrize(
    ("text", "seconds"), [("15m", 900), ("1h30m", 5400), ("500ms", 0.5), ("2s", 2), ("1d", 86400)]
)
def test_prometheus_durations(text: str, seconds: float) -> None:
    assert stack.seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "m5", "1h 30m", "5x"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        stack.seconds(text)


def test_the_knob_caps_for_and_changes_nothing_else(tmp_path: Path) -> None:
    stack.write_stack(tmp_path, TARGETS, timing=stack.Timing(for_cap=120))
    shipped = rules_by_name(stack.DEPLOY / "rules")
    written = rules_by_name(tmp_path / "rules")
    assert shipped.keys() == written.keys()
    for name, rule in shipped.items():
        copy, original = dict(written[name]), dict(rule)
        if "for" in original and stack.seconds(str(original["for"])) > 120:
            assert copy.pop("for") == "120s", name
            del original["for"]
        assert copy == original, name
    labels = "{'severity': 'critical', 'service': 'tensafe-api'}"
    assert written[f"HighErrorRate{labels}"]["for"] == "120s"  # shipped: 5m
    assert written[f"TenSafeAPIDown{labels}"]["for"] == "1m"  # under the cap: as shipped
    untouched = stack.capped_rules((stack.DEPLOY / "rules" / "self.yaml").read_text(), None)
    assert untouched == (stack.DEPLOY / "rules" / "self.yaml").read_text()


def test_the_files_pass_promtool_and_amtool(tmp_path: Path) -> None:
    promtool, amtool = require_binary("promtool"), require_binary("amtool")
    stack.write_stack(
        tmp_path, TARGETS, timing=stack.TEST_TIMING, webhook_token="t0k", pagerduty_routing_key="k"
    )
    for argv in (
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        [amtool, "check-config", str(tmp_path / "alertmanager.yml")],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    prometheus = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["tensafe-api"]["static_configs"] == [{"targets": ["127.0.0.1:40001"]}]
    assert jobs["tensafe-cluster"]["metrics_path"] == "/cluster/metrics"
    assert jobs["tensafe-ops"]["static_configs"] == [{"targets": ["127.0.0.1:9877"]}]
    am = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    webhook = am["receivers"][0]["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:9877/api/v1/alerts"
    token = Path(webhook["http_config"]["authorization"]["credentials_file"])
    assert token.read_text() == "t0k" and token.stat().st_mode & 0o077 == 0
    direct = am["receivers"][1]["pagerduty_configs"][0]
    assert direct["url"] == "http://127.0.0.1:40002/v2/enqueue"
    assert (am["route"]["group_wait"], am["route"]["group_interval"]) == ("1s", "1s")
    assert am["route"]["repeat_interval"] == "4h"  # only the knob's fields change


def test_commands_cluster_several_alertmanagers(tmp_path: Path) -> None:
    prometheus, first, second = stack.commands(tmp_path, TARGETS, timing=stack.TEST_TIMING)
    assert "--rules.alert.resend-delay=1s" in prometheus
    assert "--cluster.listen-address=127.0.0.1:9194" in first
    assert "--cluster.peer=127.0.0.1:9195" in first
    assert "--cluster.peer=127.0.0.1:9194" in second
    single = stack.Targets("a:1", "b:2", "c:3", ("127.0.0.1:9093",))
    _prometheus, only = stack.commands(tmp_path, single)
    assert "--cluster.listen-address=" in only


def test_the_demo_recipe_is_one_line_over_written_files(tmp_path: Path) -> None:
    urls = {"product": "http://127.0.0.1:40001", "pagerduty_events": "http://127.0.0.1:40002"}
    text = stack.demo_recipe(tmp_path / "stack", "127.0.0.1:9877", urls, "routing-key")
    line = text.splitlines()[1].strip()
    assert line.startswith("prometheus --config.file=") and line.endswith("&")
    assert " & prometheus-alertmanager --config.file=" in line
    assert "for: capped at 15s" in text
    for name in ("prometheus.yml", "alertmanager.yml", "rules/checklist.yaml"):
        assert (tmp_path / "stack" / name).is_file()


def test_a_demo_with_configured_credentials_says_where_the_token_goes(tmp_path: Path) -> None:
    """The open demo's receiver takes the written token; a configured one needs the user's,
    which the recipe does not copy out of the configuration."""
    urls = {"product": "http://127.0.0.1:40001", "pagerduty_events": "http://127.0.0.1:40002"}
    token = (tmp_path / "stack" / "secrets" / "tensafe-ops-token").resolve()
    text = stack.demo_recipe(tmp_path / "stack", "127.0.0.1:9877", urls, "routing-key")
    assert token.read_text() == "demo" and "bearer token" not in text
    closed = (tmp_path / "closed" / "secrets" / "tensafe-ops-token").resolve()
    text = stack.demo_recipe(
        tmp_path / "closed", "127.0.0.1:9877", urls, "routing-key", webhook_auth=True
    )
    assert closed.read_text() == ""
    assert f"bearer token of its receiver /api/v1/alerts into {closed}" in text
    assert text.splitlines()[1].strip().startswith("prometheus --config.file=")  # still runnable


def test_a_restart_keeps_the_token_the_user_wrote(tmp_path: Path) -> None:
    """Every `serve --demo` writes the stack again: the receiver's token written in between
    survives (an empty one gets 401s, which Alertmanager drops without retrying)."""
    urls = {"product": "http://127.0.0.1:40001", "pagerduty_events": "http://127.0.0.1:40002"}
    token = (tmp_path / "secrets" / "tensafe-ops-token").resolve()
    stack.demo_recipe(tmp_path, "127.0.0.1:9877", urls, "routing-key", webhook_auth=True)
    assert token.read_text() == ""
    token.write_text("am-t0ken")
    stack.demo_recipe(tmp_path, "127.0.0.1:9877", urls, "other-key", webhook_auth=True)
    assert token.read_text() == "am-t0ken" and token.stat().st_mode & 0o077 == 0
    routing_key = tmp_path / "secrets" / "pagerduty-routing-key"
    assert routing_key.read_text() == "other-key"  # the demo's own secrets are rewritten


def test_alertmanager_sends_to_the_configured_receiver_path(tmp_path: Path) -> None:
    urls = {"product": "http://127.0.0.1:40001", "pagerduty_events": "http://127.0.0.1:40002"}
    text = stack.demo_recipe(
        tmp_path, "127.0.0.1:9877", urls, "k", receiver_path="/hooks/am", webhook_auth=True
    )
    am = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    sent_to = {w["url"] for r in am["receivers"] for w in r.get("webhook_configs", [])}
    assert sent_to == {"http://127.0.0.1:9877/hooks/am"}
    assert "bearer token of its receiver /hooks/am into" in text
