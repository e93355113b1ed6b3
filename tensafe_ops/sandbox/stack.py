"""Prometheus and Alertmanager wired to a running tensafe-ops, from the shipped files.

`write_stack` copies `deploy/rules/*.yaml` and `deploy/alertmanager/alertmanager.yml` into a
directory with a `prometheus.yml` that scrapes the service and the simulated TenSafe API,
pointing Alertmanager's receivers at the service; `commands` gives the command lines. The demo
prints them as a one-line recipe, and the end-to-end test runs exactly these files.

The timing knob (`Timing`, docs/alerts.md#running-the-rules-end-to-end) is the one way the
shipped rules are changed: every `for:` longer than `for_cap` is cut to it, and Alertmanager's
`group_wait` / `group_interval` are shortened, so an alert fires and resolves in seconds
instead of minutes. Expressions, thresholds, labels and routes stay as shipped.
"""

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webhook.config import DEFAULT_RECEIVER_PATH

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}


@dataclass(frozen=True)
class Timing:
    """How fast the stack runs. The defaults are the shipped behaviour."""

    scrape_interval: float = 15.0
    evaluation_interval: float = 15.0
    for_cap: float | None = None
    """Seconds: every rule's `for:` longer than this is cut to it (the test knob)."""
    group_wait: float | None = None
    """Seconds for every route's `group_wait` (None: as shipped)."""
    group_interval: float | None = None
    resend_delay: float = 1.0
    """Prometheus' --rules.alert.resend-delay (its 1 m default delays the first alert)."""


DEMO_TIMING = Timing(
    scrape_interval=5, evaluation_interval=5, for_cap=15, group_wait=2, group_interval=10
)
TEST_TIMING = Timing(
    scrape_interval=1, evaluation_interval=1, for_cap=2, group_wait=1, group_interval=1
)


@dataclass(frozen=True)
class Targets:
    """Where the stack's parts are (host:port, no scheme)."""

    service: str
    """tensafe-ops (exporter and webhook)."""
    product: str
    """The simulated TenSafe API (`/metrics` and `/cluster/metrics`)."""
    prometheus: str
    alertmanagers: tuple[str, ...]
    pagerduty_events_url: str | None = None
    """Where the `pagerduty-direct` receiver sends (the sandbox's Events API fake)."""
    cluster_ports: tuple[int, ...] = ()
    """Alertmanager gossip ports, one per Alertmanager, for an HA cluster."""


def seconds(duration: str) -> float:
    """A Prometheus duration (`1h30m`, `15m`, `500ms`) in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def duration(value: float) -> str:
    return f"{round(value * 1000)}ms" if value < 1 else f"{round(value)}s"


def capped_rules(text: str, for_cap: float | None) -> str:
    """A rule file with every `for:` cut to at most `for_cap` seconds."""
    if for_cap is None:
        return text
    document = yaml.safe_load(text)
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule and seconds(str(rule["for"])) > for_cap:
                rule["for"] = duration(for_cap)
    return yaml.safe_dump(document, sort_keys=False)


def _routes(route: dict[str, Any]) -> list[dict[str, Any]]:
    return [route, *(child for sub in route.get("routes", []) for child in _routes(sub))]


def alertmanager_config(
    text: str, webhook_url: str, secrets: Path, timing: Timing, pagerduty_events_url: str | None
) -> dict[str, Any]:
    """The shipped example pointed at this service, its secrets files in `secrets`."""
    config: dict[str, Any] = yaml.safe_load(text)
    for route in _routes(config["route"]):
        if timing.group_wait is not None and (route is config["route"] or "group_wait" in route):
            route["group_wait"] = duration(timing.group_wait)
        if timing.group_interval is not None and (
            route is config["route"] or "group_interval" in route
        ):
            route["group_interval"] = duration(timing.group_interval)
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
            auth = webhook["http_config"]["authorization"]
            auth["credentials_file"] = str(secrets / Path(auth["credentials_file"]).name)
        for pagerduty in receiver.get("pagerduty_configs", []):
            pagerduty["routing_key_file"] = str(secrets / Path(pagerduty["routing_key_file"]).name)
            if pagerduty_events_url is not None:
                pagerduty["url"] = pagerduty_events_url
    return config


def prometheus_config(targets: Targets, timing: Timing) -> dict[str, Any]:
    def job(name: str, target: str, path: str = "/metrics") -> dict[str, Any]:
        return {
            "job_name": name,
            "metrics_path": path,
            "static_configs": [{"targets": [target]}],
        }

    return {
        "global": {
            "scrape_interval": duration(timing.scrape_interval),
            "evaluation_interval": duration(timing.evaluation_interval),
        },
        "rule_files": ["rules/*.yaml"],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [*targets.alertmanagers]}]}]
        },
        "scrape_configs": [
            job("tensafe-api", targets.product),
            job("tensafe-cluster", targets.product, "/cluster/metrics"),
            job("tensafe-ops", targets.service),
        ],
    }


def write_stack(
    directory: Path,
    targets: Targets,
    *,
    timing: Timing = Timing(),
    webhook_token: str = "",
    pagerduty_routing_key: str = "",
    receiver_path: str = DEFAULT_RECEIVER_PATH,
) -> None:
    """Write prometheus.yml, alertmanager.yml, rules/ and secrets/ into `directory`;
    Alertmanager's webhook receivers send to the service's `receiver_path`.

    `webhook_token` is written only when `secrets/tensafe-ops-token` does not exist yet: that
    file is where the user writes their receiver's bearer token (`demo_recipe` says so), and a
    restart that emptied it would get 401s, which Alertmanager drops without a retry."""
    directory = directory.resolve()  # Alertmanager reads relative paths from its config's dir
    rules = directory / "rules"
    shutil.rmtree(rules, ignore_errors=True)
    rules.mkdir(parents=True)
    secrets = directory / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    for source in sorted((DEPLOY / "rules").glob("*.yaml")):
        (rules / source.name).write_text(capped_rules(source.read_text(), timing.for_cap))
    token = secrets / "tensafe-ops-token"
    if not token.exists():
        token.write_text(webhook_token)
    (secrets / "pagerduty-routing-key").write_text(pagerduty_routing_key)
    for secret in secrets.iterdir():
        secret.chmod(0o600)
    shipped = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    webhook_url = f"http://{targets.service}{receiver_path}"
    am = alertmanager_config(shipped, webhook_url, secrets, timing, targets.pagerduty_events_url)
    (directory / "alertmanager.yml").write_text(yaml.safe_dump(am, sort_keys=False))
    prometheus = prometheus_config(targets, timing)
    (directory / "prometheus.yml").write_text(yaml.safe_dump(prometheus, sort_keys=False))


def commands(
    directory: Path,
    targets: Targets,
    *,
    timing: Timing = Timing(),
    prometheus: str = "prometheus",
    alertmanager: str = "prometheus-alertmanager",
) -> list[list[str]]:
    """Command lines: Prometheus, then each Alertmanager (clustered when there are several)."""
    directory = directory.resolve()
    argv = [
        [
            prometheus,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'prometheus-data'}",
            f"--web.listen-address={targets.prometheus}",
            f"--rules.alert.resend-delay={duration(timing.resend_delay)}",
        ]
    ]
    host = targets.alertmanagers[0].rsplit(":", 1)[0]
    peers = [f"{host}:{port}" for port in targets.cluster_ports]
    for index, address in enumerate(targets.alertmanagers):
        command = [
            alertmanager,
            f"--config.file={directory / 'alertmanager.yml'}",
            f"--storage.path={directory / f'alertmanager-data-{index}'}",
            f"--web.listen-address={address}",
        ]
        if peers:
            command += [
                f"--cluster.listen-address={peers[index]}",
                f"--cluster.advertise-address={peers[index]}",
                *(f"--cluster.peer={peer}" for peer in peers if peer != peers[index]),
            ]
        else:
            command.append("--cluster.listen-address=")  # a single Alertmanager: no gossip
        argv.append(command)
    return argv


def recipe(argv: list[list[str]]) -> str:
    """One shell line starting every command in the background."""
    return " & ".join(shlex.join(command) for command in argv) + " &"


def demo_recipe(
    directory: Path,
    service: str,
    urls: dict[str, str],
    routing_key: str,
    *,
    receiver_path: str = DEFAULT_RECEIVER_PATH,
    webhook_auth: bool = False,
) -> str:
    """Write the demo's stack files into `directory`; return the lines telling how to run them.

    `receiver_path`: the demo's receiver Alertmanager sends to (`server.demo_receiver`).
    `webhook_auth`: that receiver keeps the credentials a config file set. Its token is not
    copied out of the configuration: the lines say which file Alertmanager reads it from, and
    a restart keeps what was written there (`write_stack`).
    """
    if not (DEPLOY / "rules").is_dir():
        return "Prometheus and Alertmanager: the recipe needs a source checkout (no deploy/)."
    targets = Targets(
        service=service,
        product=urls["product"].removeprefix("http://"),
        prometheus="127.0.0.1:9090",
        alertmanagers=("127.0.0.1:9093",),
        pagerduty_events_url=f"{urls['pagerduty_events']}/v2/enqueue",
    )
    write_stack(
        directory,
        targets,
        timing=DEMO_TIMING,
        webhook_token="" if webhook_auth else "demo",  # an open receiver takes any token
        pagerduty_routing_key=routing_key,
        receiver_path=receiver_path,
    )
    cap = duration(DEMO_TIMING.for_cap or 0)
    lines = [
        f"Prometheus and Alertmanager on the shipped rules (for: capped at {cap}), "
        "wired to this demo:",
        f"  {recipe(commands(directory, targets, timing=DEMO_TIMING))}",
        "then http://127.0.0.1:9090/alerts and http://127.0.0.1:9093 (docs/alerts.md).",
    ]
    if webhook_auth:
        token = directory.resolve() / "secrets" / "tensafe-ops-token"
        lines.append(
            "The webhook takes the credentials your config sets: write the bearer token of its "
            f"receiver {receiver_path} into {token} (Alertmanager reads it on every send)."
        )
    return "\n".join(lines)
