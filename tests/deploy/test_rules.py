"""The shipped alert rules and Alertmanager example: valid for the real tools, unit-tested at
their thresholds, documented, and classified the way the webhook routes them."""

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_binary
from webhook.config import WebhookConfig

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "rules"
RULE_FILES = sorted(RULES.glob("*.yaml"))
RULE_TESTS = sorted((RULES / "tests").glob("*_test.yaml"))
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
ALERTS_DOC = ROOT / "docs" / "alerts.md"
RUNBOOK = "https://github.com/tensafe/tensafe-ops/blob/main/docs/alerts.md#"

# The checklist's Part 6, name -> class.
CHECKLIST = {
    "TenSafeAPIDown": "critical",
    "HighErrorRate": "critical",
    "DatabaseDown": "critical",
    "PrivacyBudgetExhausted": "critical",
    "HighLatencyP95": "warning",
    "HighCPU": "warning",
    "HighMemory": "warning",
    "QueueBacklog": "warning",
    "DiskSpace": "warning",
    "NewCustomerSignup": "info",
    "HighTraining": "info",
    "CertExpiringSoon": "info",
}


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def rules() -> list[dict[str, Any]]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(group["rules"])
    return found


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def test_promtool_accepts_every_rule_file() -> None:
    promtool = require_binary("promtool")
    result = run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    promtool = require_binary("promtool")
    result = run(promtool, "test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - silent == set(), "alerts never shown silent"


def test_the_checklist_alerts_exist_with_their_class() -> None:
    classes = {rule["alert"]: rule["labels"]["severity"] for rule in alerting_rules()}
    assert {name: classes.get(name) for name in CHECKLIST} == CHECKLIST


def test_every_alert_has_a_class_a_service_and_the_four_annotations() -> None:
    doc = ALERTS_DOC.read_text()
    headings = set(re.findall(r"^### (\w+)$", doc, re.MULTILINE))
    for rule in alerting_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["labels"].get("service"), name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "action", "runbook_url"}, name
        assert "$value" in annotations["description"] or "$labels" in annotations["description"]
        assert annotations["runbook_url"] == RUNBOOK + name.lower(), name
        assert name in headings, f"{name} has no section in docs/alerts.md"
    assert headings == {rule["alert"] for rule in alerting_rules()}, "documented but not shipped"


def test_every_recording_rule_is_documented() -> None:
    doc = ALERTS_DOC.read_text()
    for record in {rule["record"] for rule in rules() if "record" in rule}:
        assert f"`{record}`" in doc, f"{record} is not in docs/alerts.md"


def test_amtool_accepts_the_example_alertmanager_config() -> None:
    amtool = require_binary("amtool")
    result = run(amtool, "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=HighErrorRate", "severity=critical", "service=tensafe-api"], "tensafe-ops"),
        (["alertname=HighCPU", "severity=warning", "service=tensafe-api"], "tensafe-ops"),
        (["alertname=NewCustomerSignup", "severity=info"], "tensafe-ops"),
        (["alertname=TenSafeOpsDown", "severity=critical"], "pagerduty-direct"),
    ],
)
def test_alertmanager_routes(labels: list[str], receiver: str) -> None:
    amtool = require_binary("amtool")
    result = run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


def test_alertmanager_example_matches_the_webhook() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    webhook = next(r for r in config["receivers"] if r["name"] == "tensafe-ops")
    target = webhook["webhook_configs"][0]
    assert target["url"].endswith("/api/v1/alerts") and target["send_resolved"] is True
    assert target["http_config"]["authorization"]["type"] == "Bearer"
    # The webhook's default staleness is 3x the repeat interval (docs/webhook.md).
    assert config["route"]["repeat_interval"] == "4h"
    assert WebhookConfig().stale_default == 3 * 4 * 3600
    [inhibit] = config["inhibit_rules"]
    assert inhibit["source_matchers"] == ['severity="critical"']
    assert inhibit["target_matchers"] == ['severity="warning"']
    assert "service" in inhibit["equal"]
