"""The Grafana dashboard: generated, and checked the way Grafana's dashboard linter would —
datasource variable everywhere, expressions that parse, units and descriptions, and only
metrics that something actually serves."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tensafe_ops.app import make_app
from tensafe_ops.sandbox.server import RunningWorld
from tensafe_ops.settings import parse_settings
from tests.conftest import require_binary
from tests.deploy.test_rules import RULE_FILES, rules
from tests.test_demo import SOURCES, demo_world, scrape_until_up
from webhook import sweep_once
from webhook.handlers import WEBHOOK_KEY

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "deploy" / "grafana" / "dashboard.py"
DASHBOARD = ROOT / "deploy" / "grafana" / "tensafe-ops.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's built-in variables, as a linter substitutes them before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h"}
BUILT_IN = {"up", "ALERTS"}  # made by Prometheus itself

__all__ = ["demo_world"]  # the fixture, shared with tests/test_demo.py


def board() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)


def expressions() -> list[str]:
    found = []
    for panel in panels(board()):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            found.append(expr)
    return found


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def test_the_committed_json_is_what_the_generator_makes() -> None:
    generated = subprocess.run(
        [sys.executable, str(GENERATOR)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert generated == DASHBOARD.read_text(), "run `make dashboard` and commit the JSON"


def test_conventions_of_kube_prometheus_dashboards() -> None:
    dashboard = board()
    assert dashboard["uid"] == "tensafe-ops"
    assert {"tensafe", "tensafe-ops"} <= set(dashboard["tags"])
    assert dashboard["schemaVersion"] >= 39  # Grafana 11
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        title = panel["title"]
        assert panel["datasource"] == DATASOURCE, title
        assert panel["description"], title
        assert panel["fieldConfig"]["defaults"].get("unit"), title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, title
            assert target["refId"], title
            assert "[5m]" not in target["expr"], f"{title}: use $__rate_interval"


def test_the_checklist_panels_and_the_business_rows() -> None:
    rows = [panel["title"] for panel in board()["panels"] if panel["type"] == "row"]
    assert rows == [
        "Service health",
        "Request metrics",
        "Privacy & training",
        "Infrastructure",
        "Support",
        "Incidents",
        "Revenue",
        "Customers",
        "Alert response",
    ]
    exprs = {" ".join(expr.split()) for expr in expressions()}
    for checklist_query in (
        "max(tensafe_dp_epsilon_spent)",
        "sum(rate(tensafe_he_operations_total[1h])) * 3600",
        "sum(rate(tensafe_http_requests_total[5m]))",
        'sum(rate(tensafe_http_requests_total{status=~"5.."}[5m])) / '
        "sum(rate(tensafe_http_requests_total[5m])) * 100",
        'avg(DCGM_FI_DEV_GPU_UTIL{namespace="tensafe"})',
    ):
        assert checklist_query in exprs


def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    records = [
        {"record": f"dashboard:panel_query_{index}", "expr": expr}
        for index, expr in enumerate(expressions())
    ]
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_every_metric_read_is_served(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    """Every series the dashboard and the rules read is on the demo's /metrics, the simulated
    product's, a recording rule, or Prometheus' own."""
    settings = parse_settings(
        {
            "server": {"state_dir": str(tmp_path / "state")},
            "exporter": {name: {"interval": 2.0} for name in SOURCES},
        }
    )
    client: TestClient = await aiohttp_client(make_app(demo_world.configure(settings)))  # type: ignore[type-arg]
    await scrape_until_up(client)
    await sweep_once(client.app[WEBHOOK_KEY])  # the webhook's gauges appear after a sweep
    texts = [await (await client.get("/metrics")).text()]
    product = demo_world.urls["product"]
    session = client.session
    for path in ("/metrics", "/cluster/metrics"):
        async with session.get(product + path) as response:
            texts.append(await response.text())
    families = [family for text in texts for family in text_string_to_metric_families(text)]
    # Family names too: a summary without observations has no quantile samples, yet.
    served = {family.name for family in families} | {
        sample.name for family in families for sample in family.samples
    }
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    known = served | recorded | BUILT_IN
    for expr in expressions():
        assert metric_names(expr) <= known, expr
    for rule in rules():
        assert metric_names(rule["expr"]) <= known, rule.get("alert") or rule.get("record")
    assert RULE_FILES
