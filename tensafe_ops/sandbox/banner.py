"""The plain-text block `tensafe-ops serve --demo` prints once it listens: where everything
is and commands to copy (a sample critical alert, a Prometheus scrape config, tensafe-admin).

Built from the sandbox's URL map (`RunningWorld.urls`): a new simulated upstream gets a line
by adding its label to `UPSTREAMS` (an unknown one is listed under its key).
"""

import json
import shlex
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from tensafe_ops.sandbox.server import DEMO_CREDENTIALS, DEMO_ROUTING_KEY, DEMO_SLACK_WEBHOOKS
from webhook.config import DEFAULT_RECEIVER_PATH

_ZD, _PD = DEMO_CREDENTIALS["zendesk"], DEMO_CREDENTIALS["pagerduty"]
UPSTREAMS: dict[str, tuple[str, str, str]] = {
    # key in RunningWorld.urls: (label, path to show after the URL, how to call it)
    "zendesk": ("Zendesk", "", f"basic auth {_ZD['email']}/token, password {_ZD['token']}"),
    "stripe": ("Stripe", "", f"bearer {DEMO_CREDENTIALS['stripe']['api_key']}"),
    "pagerduty": ("PagerDuty REST", "", f"Authorization: Token token={_PD['token']}"),
    "pagerduty_events": ("PagerDuty Events", "/v2/enqueue", f"routing key {DEMO_ROUTING_KEY}"),
    "slack": ("Slack webhooks", "/services/…", ", ".join(f"#{c}" for c in DEMO_SLACK_WEBHOOKS)),
    "product": ("TenSafe API", "/metrics", "scenario: PATCH /_sandbox/scenario"),
}
SAMPLE_LABELS = {
    "alertname": "TenSafeAPIDown",
    "job": "tensafe-api",
    "instance": "api-eu-1:8443",
    "severity": "critical",
}
SAMPLE_FINGERPRINT = "dcee3b1ede4ab097"
"""Alertmanager's fingerprint of SAMPLE_LABELS (FNV-1a 64; checked by the tests)."""


def sample_alert(now: datetime) -> dict[str, Any]:
    """A critical Alertmanager notification (webhook v4) that fired at `now`."""
    alert = {
        "status": "firing",
        "labels": SAMPLE_LABELS,
        "annotations": {
            "summary": "TenSafe API down on api-eu-1:8443 (sample alert from the demo)",
            "immediate_action": "Nothing: this is the demo.",
        },
        "startsAt": now.isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
        "fingerprint": SAMPLE_FINGERPRINT,
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="TenSafeAPIDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "tensafe-ops",
        "groupLabels": {"alertname": "TenSafeAPIDown"},
        "commonLabels": SAMPLE_LABELS,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [alert],
    }


def sample_alert_curl(webhook_url: str, now: datetime, auth: bool = False) -> str:
    body = json.dumps(sample_alert(now), separators=(",", ":"))
    credentials = "-H 'Authorization: Bearer <your receiver token>' " if auth else ""
    return (
        f"curl -sS -X POST {shlex.quote(webhook_url)} {credentials}"
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )


def scrape_config(target: str) -> str:
    return (
        "scrape_configs:\n"
        "  - job_name: tensafe-ops\n"
        f'    static_configs: [{{targets: ["{target}"]}}]'
    )


def _access(auth: bool) -> str:
    return "credentials from the config" if auth else "no auth in the demo"


def startup_block(
    base: str,
    upstreams: Mapping[str, str],
    *,
    usage_db_url: str,
    webhook: bool,
    now: datetime,
    stack_recipe: str | None = None,
    receiver_path: str = DEFAULT_RECEIVER_PATH,
    webhook_auth: bool = False,
    alerts_api_auth: bool = False,
    operator_auth: bool = False,
    pages: Literal["open", "sign-in"] | None = None,
) -> str:
    """The block for a demo listening at `base` (`http://host:port`) with these simulated
    upstreams (`RunningWorld.urls`); `webhook`: whether the webhook half runs; `stack_recipe`:
    how to start Prometheus and Alertmanager on the shipped rules (`stack.demo_recipe`);
    `receiver_path`: the receiver the sample alert goes to (`server.demo_receiver`);
    `webhook_auth`: whether the config's credentials guard that receiver (else it is open);
    `alerts_api_auth` / `operator_auth`: whether they guard the webhook's API / the operator
    API; `pages`: whether the status pages are served, open or behind the API's credentials."""
    lines = [
        "Demo mode: every source is the simulated TenSafe world, not real data.",
        "",
        f"  Metrics        {base}/metrics",
        f"  Health         {base}/healthz  {base}/readyz",
    ]
    if webhook:
        lines += [
            f"  Webhook        POST {base}{receiver_path}  ({_access(webhook_auth)})",
            f"  Alerts API     {base}/api/v1/alerts  {base}/api/v1/deliveries  "
            f"({_access(alerts_api_auth)})",
        ]
    if pages is not None:
        access = "no sign-in" if pages == "open" else "sign in with the API's credentials"
        lines += [
            f"  Status pages   {base}/status  {base}/customers  {base}/checklist  ({access})",
        ]
    lines += [
        "",
        "Simulated upstreams (each lists what it received: GET <url>/_sandbox/received?since=…)",
    ]
    for key, url in upstreams.items():
        label, path, how = UPSTREAMS.get(key, (key, "", ""))
        lines.append(f"  {label:<18} {url + path:<34} {how}".rstrip())
    lines.append(f"  {'Usage database':<18} {usage_db_url}")
    if webhook:
        events = upstreams.get("pagerduty_events", "")
        lines += [
            "",
            "Fire a sample critical alert (pages PagerDuty, posts to Slack #incidents):",
            f"  {sample_alert_curl(base + receiver_path, now, webhook_auth)}",
            f"then see the page: curl -s '{events}/_sandbox/received?method=POST', and the",
            "incident in tensafe_pagerduty_open_incidents after PagerDuty's next refresh.",
        ]
    api_auth = "credentials from the config" if operator_auth else "open in the demo"
    token = " --token <your API token>" if operator_auth else ""
    lines += [
        "",
        f"The daily checklist (operator API, {api_auth}; docs/operator.md):",
        f"  {base}/api/v1/status  {base}/api/v1/checklist/today  {base}/api/v1/openapi.json",
        f"  tensafe-admin status --quick --url {base}{token} \\",
        "    --prometheus-url http://127.0.0.1:9090",
        "  (the Prometheus of the recipe below; or start the demo with --prometheus-url)",
    ]
    target = base.removeprefix("http://").removeprefix("https://")
    lines += ["", "Prometheus:", *(f"  {line}" for line in scrape_config(target).splitlines())]
    if stack_recipe:
        lines += ["", stack_recipe]
    return "\n".join(lines) + "\n"
