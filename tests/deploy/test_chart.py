"""The Helm chart, proven offline: rendered and linted by Helm's own code (helm-python-sdk, Helm
v4), every object checked against the Kubernetes 1.31 schemas (kubernetes-validate, strict) or
the prometheus-operator CRD models, the rules through promtool, and the chart's own logic."""

import json
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from cloudcoil.models.prometheus_operator import v1, v1alpha1

from tensafe_ops.cli import main
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "tensafe-ops"
CI_FILES = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))
KUBERNETES = "1.31.0"  # the Kubernetes version the objects are validated against
CRD_MODELS: dict[str, Any] = {
    "ServiceMonitor": v1.ServiceMonitor,
    "PrometheusRule": v1.PrometheusRule,
    "AlertmanagerConfig": v1alpha1.AlertmanagerConfig,
}
RELEASE, NAMESPACE = "tensafe-ops", "ops"


def ci_values(name: str) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "ci" / name).read_text())
    return values


def render(values: dict[str, Any], chart: Path = CHART) -> list[dict[str, Any]]:
    """Every object the chart renders for these values (as `helm template` would)."""
    with helm.Chart.load(chart) as loaded:
        manifests = loaded.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        document
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for document in yaml.safe_load_all(text)
        if document
    ]


@cache
def rendered(ci_file: str) -> tuple[dict[str, Any], ...]:
    return tuple(render(ci_values(ci_file)))


def of_kind(objects: Iterator[dict[str, Any]] | tuple[dict[str, Any], ...], kind: str) -> list[Any]:
    return [o for o in objects if o["kind"] == kind]


def by_component(objects: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o for o in of_kind(objects, kind)
    }


def chart_copy(tmp_path: Path, *, without_schema: bool = False) -> Path:
    copy = tmp_path / "tensafe-ops"
    shutil.copytree(CHART, copy)
    if without_schema:
        (copy / "values.schema.json").unlink()
    return copy


# ---- render, lint, validate -----------------------------------------------------------------


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_lints_strictly(ci_file: str) -> None:
    report = helm.lint(CHART, ci_values(ci_file), strict=True, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_every_object_validates_strictly(ci_file: str) -> None:
    objects = rendered(ci_file)
    assert of_kind(objects, "Deployment")
    for manifest in objects:
        model = CRD_MODELS.get(manifest["kind"])
        if model is None:
            kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
            continue
        # The models accept unknown fields: a typo would vanish from the dump, so compare.
        dumped = model.model_validate(manifest).model_dump(
            by_alias=True, exclude_none=True, mode="json"
        )
        assert dumped == manifest, f"{manifest['kind']} has fields its CRD does not know"


def test_strict_validation_catches_a_typo() -> None:
    """The checks above do look: an unknown field fails each of them."""
    deployment = json.loads(json.dumps(of_kind(rendered(CI_FILES[0]), "Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    monitor = json.loads(
        json.dumps(of_kind(rendered("everything-values.yaml"), "ServiceMonitor")[0])
    )
    monitor["spec"]["endpoints"][0]["scrapeTimout"] = "10s"
    dumped = v1.ServiceMonitor.model_validate(monitor).model_dump(
        by_alias=True, exclude_none=True, mode="json"
    )
    assert dumped != monitor


def test_default_values_ask_for_the_secrets() -> None:
    """A bare install says, in one message, every token it needs."""
    with pytest.raises(helm.HelmRenderError) as caught:
        render({})
    message = str(caught.value)
    assert "secrets that secrets.values lacks: alertmanager-token, api-token," in message
    for name in ("state-db-url", "stripe-api-key", "usage-db-url", "slack-alerts-webhook-url"):
        assert name in message


# ---- roles ------------------------------------------------------------------------------------


def test_single_process_runs_one_pod_of_role_all_on_sqlite() -> None:
    objects = rendered("single-process-values.yaml")
    deployments = by_component(objects, "Deployment")
    assert list(deployments) == ["all"]
    spec = deployments["all"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == RELEASE
    assert [c["metadata"]["name"] for c in of_kind(objects, "PersistentVolumeClaim")] == [RELEASE]
    config = yaml.safe_load(of_kind(objects, "ConfigMap")[0]["data"]["all.yaml"].replace("!", ""))
    assert config["server"]["role"] == "all" and "state_db_url" not in config["server"]
    assert set(config) == {"server", "exporter", "webhook"}
    assert not of_kind(objects, "PodDisruptionBudget")


def test_split_roles_render_an_exporter_and_webhook_replicas_on_postgresql() -> None:
    objects = rendered("split-postgresql-values.yaml")
    deployments = by_component(objects, "Deployment")
    assert set(deployments) == {"exporter", "webhook"}
    exporter, webhook = deployments["exporter"]["spec"], deployments["webhook"]["spec"]
    assert exporter["replicas"] == 1 and exporter["strategy"]["type"] == "Recreate"
    assert webhook["replicas"] == 2 and webhook["strategy"]["type"] == "RollingUpdate"
    spread = webhook["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "webhook"
    configs = {
        name: yaml.safe_load(text.replace("!file ", ""))
        for name, text in of_kind(objects, "ConfigMap")[0]["data"].items()
    }
    assert configs["exporter.yaml"]["server"]["role"] == "exporter"
    assert set(configs["exporter.yaml"]) == {"server", "exporter"}
    assert set(configs["webhook.yaml"]) == {"server", "webhook"}
    assert configs["webhook.yaml"]["server"]["state_db_url"].endswith("/secrets/state-db-url")
    # Each pod gets only the tokens its own configuration uses.
    items = {
        component: {
            item["path"]
            for volume in d["spec"]["template"]["spec"]["volumes"]
            if volume["name"] == "secrets"
            for item in volume["secret"]["items"]
        }
        for component, d in deployments.items()
    }
    assert "stripe-api-key" in items["exporter"] and "stripe-api-key" not in items["webhook"]
    assert "state-db-url" in items["webhook"] and "state-db-url" not in items["exporter"]
    assert "api-token" in items["webhook"] and "api-token" not in items["exporter"]
    pdb = of_kind(objects, "PodDisruptionBudget")[0]
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "webhook"
    services = by_component(objects, "Service")
    assert services["webhook"]["metadata"]["name"] == f"{RELEASE}-webhook"


def test_autoscaled_webhook_leaves_replicas_to_the_hpa() -> None:
    objects = rendered("everything-values.yaml")
    webhook = by_component(objects, "Deployment")["webhook"]
    assert "replicas" not in webhook["spec"]
    hpa = of_kind(objects, "HorizontalPodAutoscaler")[0]
    assert hpa["spec"]["scaleTargetRef"]["name"] == webhook["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 8)


def test_only_the_webhook_role() -> None:
    values = ci_values("split-postgresql-values.yaml") | {"exporter": {"enabled": False}}
    objects = render(values)
    assert set(by_component(tuple(objects), "Deployment")) == {"webhook"}
    assert set(of_kind(objects, "ConfigMap")[0]["data"]) == {"webhook.yaml"}


def test_pods_are_locked_down() -> None:
    for ci_file in CI_FILES:
        for deployment in of_kind(rendered(ci_file), "Deployment"):
            pod = deployment["spec"]["template"]["spec"]
            assert pod["automountServiceAccountToken"] is False
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            (container,) = pod["containers"]
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert isinstance(context["runAsUser"], int) and context["runAsUser"] > 0
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/var/lib/tensafe-ops", "/tmp", "/etc/tensafe-ops/config.yaml"} <= mounts


def test_a_config_change_rolls_only_the_pods_it_concerns() -> None:
    values = ci_values("split-postgresql-values.yaml")
    before = by_component(tuple(render(values)), "Deployment")
    values["config"] = {**yaml.safe_load((CHART / "values.yaml").read_text())["config"]}
    values["config"]["exporter"] = {**values["config"]["exporter"], "health": {"at_risk_below": 30}}
    after = by_component(tuple(render(values)), "Deployment")

    def checksum(deployments: dict[str, Any], component: str) -> str:
        annotations = deployments[component]["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    assert checksum(before, "exporter") != checksum(after, "exporter")
    assert checksum(before, "webhook") == checksum(after, "webhook")


# ---- the configuration it writes ----------------------------------------------------------------


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_rendered_configs_pass_check_config(ci_file: str, tmp_path: Path) -> None:
    """Each pod's config.yaml, with its mounted secret files, passes `tensafe-ops check-config`."""
    values = ci_values(ci_file)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    objects = rendered(ci_file)
    for deployment in of_kind(objects, "Deployment"):
        for volume in deployment["spec"]["template"]["spec"]["volumes"]:
            for item in volume.get("secret", {}).get("items", []):
                # The value the Secret would hold (existing Secrets: one made up here).
                value = values["secrets"].get("values", {}).get(item["path"])
                if item["path"] == "state-db-url" and value is None:
                    value = "postgresql+asyncpg://tensafe:pw@postgresql:5432/tensafe"
                if item["path"].endswith("-url") and value is None:  # check-config wants URLs
                    value = f"https://hooks.slack.com/services/made-up/{item['key']}"
                (secrets / item["path"]).write_text(value or f"made-up-{item['key']}")
    for name, text in of_kind(objects, "ConfigMap")[0]["data"].items():
        config = tmp_path / name
        config.write_text(text.replace("/etc/tensafe-ops/secrets/", f"{secrets}/"))
        result = CliRunner().invoke(main, ["check-config", str(config)])
        assert result.exit_code == 0, f"{ci_file} {name}: {result.output}"
        role = yaml.safe_load(text.replace("!file ", "").replace("!env ", ""))["server"]["role"]
        assert f"{role}.yaml" == name


# ---- secrets ----------------------------------------------------------------------------------


def test_chart_created_secret_values_appear_only_in_the_secret() -> None:
    values = ci_values("split-postgresql-values.yaml")
    for ci_file_object in rendered("split-postgresql-values.yaml"):
        text = yaml.safe_dump(ci_file_object)
        leaked = [v for v in values["secrets"]["values"].values() if v in text]
        assert ci_file_object["kind"] == "Secret" or not leaked, (ci_file_object["kind"], leaked)


def test_existing_secret_puts_no_secret_value_in_any_manifest() -> None:
    objects = rendered("everything-values.yaml")
    assert not of_kind(objects, "Secret")
    assert not [o for o in objects if "stringData" in o or ("data" in o and o["kind"] == "Secret")]
    for deployment in of_kind(objects, "Deployment"):
        (secret_volume,) = [
            v["secret"]
            for v in deployment["spec"]["template"]["spec"]["volumes"]
            if v["name"] == "secrets"
        ]
        assert secret_volume["secretName"] == "tensafe-ops-credentials"
        items = {item["path"]: item["key"] for item in secret_volume["items"]}
        assert items["state-db-url"] == "STATE_DB_URL"  # secrets.keys renames it
        assert items.get("zendesk-token", "ZENDESK_API_TOKEN") == "ZENDESK_API_TOKEN"
    credentials = of_kind(objects, "AlertmanagerConfig")[0]["spec"]["receivers"][0][
        "webhookConfigs"
    ][0]["httpConfig"]["authorization"]["credentials"]
    assert credentials == {"name": "tensafe-ops-credentials", "key": "AM_WEBHOOK_TOKEN"}


def test_a_source_turned_off_needs_no_token() -> None:
    values = ci_values("split-postgresql-values.yaml")
    del values["secrets"]["values"]["stripe-api-key"]
    values["config"] = {"exporter": {"stripe": {"enabled": False, "api_key": None}}}
    exporter = by_component(tuple(render(values)), "Deployment")["exporter"]
    paths = [
        item["path"]
        for volume in exporter["spec"]["template"]["spec"]["volumes"]
        for item in volume.get("secret", {}).get("items", [])
    ]
    assert "stripe-api-key" not in paths and "zendesk-token" in paths


def test_secret_values_and_an_existing_secret_together_are_refused() -> None:
    values = ci_values("everything-values.yaml")
    values["secrets"]["values"] = {"zendesk-token": "canary-9f2e"}
    with pytest.raises(helm.HelmRenderError, match="not both"):
        render(values)


# ---- values.schema.json and refusals ----------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"webhook": {"replicaCount": "2"}}, "/webhook/replicaCount"),
        ({"serviceMonitor": {"enabled": "yes"}}, "/serviceMonitor/enabled"),
        ({"servicemonitor": {"enabled": True}}, "servicemonitor"),
        ({"webhook": {"replicas": 2}}, "replicas"),
        ({"exporter": {"database": "mysql"}}, "/exporter/database"),
        ({"serviceMonitor": {"interval": "1 minute"}}, "/serviceMonitor/interval"),
        ({"secrets": {"values": {"zendesk token": "x"}}}, "zendesk token"),
    ],
)
def test_schema_rejects_wrong_types_and_unknown_keys(values: dict[str, Any], where: str) -> None:
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError) as caught:
            chart.validate_schema(chart.merge_values(values))
        assert where in str(caught.value)


@pytest.mark.parametrize(
    "webhook",
    [
        {"database": "sqlite", "replicaCount": 2},
        {"database": "sqlite", "replicaCount": 1, "autoscaling": {"enabled": True}},
    ],
)
def test_several_webhook_replicas_without_postgresql_are_refused(
    webhook: dict[str, Any], tmp_path: Path
) -> None:
    values = ci_values("split-postgresql-values.yaml") | {"webhook": webhook}
    with pytest.raises(helm.HelmValuesError, match="/webhook/"):
        render(values)
    # The template refuses too (for tools that skip the schema).
    with pytest.raises(helm.HelmRenderError, match="several webhook replicas need PostgreSQL"):
        render(values, chart_copy(tmp_path, without_schema=True))


def test_one_webhook_replica_on_sqlite_is_fine() -> None:
    values = ci_values("split-postgresql-values.yaml")
    values["webhook"] = {"database": "sqlite", "replicaCount": 1}
    webhook = by_component(tuple(render(values)), "Deployment")["webhook"]
    assert webhook["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in webhook["spec"]["template"]["spec"]["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-webhook"


# ---- monitoring objects --------------------------------------------------------------------------


def test_monitoring_objects_are_off_by_default() -> None:
    kinds = {o["kind"] for o in rendered("single-process-values.yaml")}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig", "NetworkPolicy"}


def test_service_monitor_for_kube_prometheus_stack() -> None:
    (monitor,) = of_kind(rendered("everything-values.yaml"), "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("30s", "20s")
    assert [r["targetLabel"] for r in endpoint["relabelings"]] == ["role", "node"]
    assert endpoint["metricRelabelings"][0]["action"] == "drop"


def test_prometheus_rule_carries_the_rules_and_passes_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    (rule,) = of_kind(rendered("everything-values.yaml"), "PrometheusRule")
    shipped = [
        group
        for path in sorted((CHART / "files" / "rules").glob("*.yaml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert rule["spec"]["groups"] == shipped
    names = {r.get("alert") for g in shipped for r in g["rules"]}
    assert {"WebhookDeadLetters", "ExporterSourceDown"} <= names
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_config_points_at_the_webhook_service() -> None:
    (config,) = of_kind(rendered("everything-values.yaml"), "AlertmanagerConfig")
    (hook,) = config["spec"]["receivers"][0]["webhookConfigs"]
    assert hook["url"] == f"http://{RELEASE}-webhook.{NAMESPACE}.svc:9877/api/v1/alerts"
    assert config["spec"]["route"]["receiver"] == "tensafe-ops"


def test_alertmanager_config_routes_and_inhibits_as_the_shipped_example() -> None:
    """The chart's AlertmanagerConfig and deploy/alertmanager/alertmanager.yml agree."""
    example = yaml.safe_load((ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    (config,) = of_kind(rendered("everything-values.yaml"), "AlertmanagerConfig")
    route = config["spec"]["route"]
    assert route["groupBy"] == example["route"]["group_by"]
    assert route["repeatInterval"] == example["route"]["repeat_interval"]
    [inhibit] = config["spec"]["inhibitRules"]
    [shipped] = example["inhibit_rules"]

    def matchers(found: list[dict[str, str]]) -> list[str]:
        return [f'{m["name"]}{m.get("matchType", "=")}"{m["value"]}"' for m in found]

    assert matchers(inhibit["sourceMatch"]) == shipped["source_matchers"]
    assert matchers(inhibit["targetMatch"]) == shipped["target_matchers"]
    assert inhibit["equal"] == shipped["equal"]


def test_network_policies_let_in_only_prometheus_and_alertmanager() -> None:
    policies = by_component(rendered("everything-values.yaml"), "NetworkPolicy")

    def sources(component: str) -> list[str]:
        return [
            peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name", "")
            or peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for rule in policies[component]["spec"]["ingress"]
            for peer in rule["from"]
        ]

    assert sources("exporter") == ["prometheus", "ops-tools"]
    assert sources("webhook") == ["prometheus", "alertmanager", "ops-tools"]
    egress_ports = {
        port["port"] for rule in policies["webhook"]["spec"]["egress"] for port in rule["ports"]
    }
    assert egress_ports == {53, 443, 5432}


def dashboard_configmaps(objects: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> list[Any]:
    return [
        o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("dashboards")
    ]


def test_dashboard_configmap_for_the_grafana_sidecar(tmp_path: Path) -> None:
    chart = chart_copy(tmp_path)
    dashboard = {
        "title": "tensafe-ops test",
        "uid": "tensafe-test",
        "panels": [],
        "schemaVersion": 39,
    }
    (chart / "files" / "dashboards" / "test-board.json").write_text(json.dumps(dashboard))
    values = ci_values("single-process-values.yaml") | {
        "grafanaDashboard": {
            "enabled": True,
            "sidecarLabel": "dashboards",
            "sidecarLabelValue": "tensafe",
        }
    }
    (configmap,) = dashboard_configmaps(render(values, chart))
    assert configmap["metadata"]["labels"]["dashboards"] == "tensafe"
    assert json.loads(configmap["data"]["test-board.json"]) == dashboard
    kubernetes_validate.validate(configmap, KUBERNETES, strict=True)


def test_shipped_dashboards_render_as_valid_json() -> None:
    shipped = {p.name: p for p in (CHART / "files" / "dashboards").glob("*.json")}
    configmaps = dashboard_configmaps(rendered("everything-values.yaml"))
    data = configmaps[0]["data"] if configmaps else {}
    assert set(data) == set(shipped)
    for name, path in shipped.items():
        assert json.loads(data[name]) == json.loads(path.read_text())


def test_chart_files_are_copies_of_deploy() -> None:
    """The chart reads deploy/rules and deploy/grafana through copies; they must not drift."""
    for source, copy, pattern in (
        (ROOT / "deploy" / "rules", CHART / "files" / "rules", "*.yaml"),
        (ROOT / "deploy" / "grafana", CHART / "files" / "dashboards", "*.json"),
    ):
        originals = {p.name: p.read_bytes() for p in source.glob(pattern)}
        copies = {p.name: p.read_bytes() for p in copy.glob(pattern)}
        assert copies == originals, f"{copy} differs from {source}: run `make chart-files`"


def test_extra_objects_are_rendered_with_the_release() -> None:
    names = [
        o["metadata"]["name"] for o in of_kind(rendered("everything-values.yaml"), "ConfigMap")
    ]
    assert f"{RELEASE}-extra" in names
