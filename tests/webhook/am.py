"""Real-shaped Alertmanager notifications and a webhook-enabled app for the receiver tests."""

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tensafe_ops.app import make_app
from tensafe_ops.clock import Clock
from tensafe_ops.settings import parse_settings
from webhook import INGESTER_KEY

DATA = Path(__file__).parent / "data"
TOKEN = "am-token-5f1c0a"
API_TOKEN = "ops-token-93be11"
PD_SECRET = "pd-webhook-secret-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
API = {"Authorization": f"Bearer {API_TOKEN}"}
ZERO_TIME = "0001-01-01T00:00:00Z"


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint: FNV-1a 64 over sorted name, 0xff, value, 0xff."""
    value = 0xCBF29CE484222325
    for name in sorted(labels):
        for byte in name.encode() + b"\xff" + labels[name].encode() + b"\xff":
            value ^= byte
            value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def am_alert(
    alertname: str,
    severity: str | None = "critical",
    *,
    status: str = "firing",
    starts_at: datetime = datetime(2026, 11, 27, 11, 50, tzinfo=UTC),
    ends_at: datetime | None = None,
    **labels: str,
) -> dict[str, Any]:
    all_labels = {"alertname": alertname, "job": "tensafe-api", **labels}
    if severity is not None:
        all_labels["severity"] = severity
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {
            "summary": f"{alertname} on {labels.get('instance', 'api-1')}",
            "description": f"{alertname} has been active for 5 minutes.",
            "runbook_url": f"https://runbooks.tensafe.example/{alertname}",
        },
        "startsAt": rfc3339(starts_at),
        "endsAt": rfc3339(ends_at) if ends_at else ZERO_TIME,
        "generatorURL": "http://prometheus.tensafe.example:9090/graph?g0.expr=up&g0.tab=1",
        "fingerprint": fingerprint(all_labels),
    }


def resolved(alert: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {**alert, "status": "resolved", "endsAt": rfc3339(at)}


def notification(*alerts: dict[str, Any], truncated: int = 0) -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    common = dict(alerts[0]["labels"]) if alerts else {}
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert["labels"].get(k) == v}
    name = common.get("alertname", "")
    return {
        "receiver": "tensafe-ops",
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {"alertname": name},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.tensafe.example:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": truncated,
        "notification_reason": "first notification",
        "routeLabels": {},
    }


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def webhook_settings(tmp_path: Path, db_url: str, **webhook: Any) -> dict[str, Any]:
    """Exporter off, webhook on; destinations point at a closed port so nothing leaves."""
    nowhere = "http://127.0.0.1:9"
    cfg: dict[str, Any] = {
        "enabled": True,
        "receivers": {"/api/v1/alerts": {"auth": {"bearer_token": TOKEN}}},
        "api_auth": {"bearer_token": API_TOKEN},
        "pagerduty_webhook_secrets": [PD_SECRET],
        "destinations": {
            "pagerduty": {
                "default": {
                    "routing_key": "R0UT1NGKEY0000000000000000000001",
                    "events_url": f"{nowhere}/v2/enqueue",
                }
            },
            "slack": {
                "incidents": {"webhook_url": f"{nowhere}/services/T1/B1/x"},
                "alerts": {"webhook_url": f"{nowhere}/services/T1/B2/y"},
            },
            "zendesk": {
                "default": {"base_url": nowhere, "email": "ops@tensafe.example", "token": "zt"}
            },
        },
        "dispatch": {"poll_interval": 3600, "backoff_base": 3600},
        "sweep_interval": 3600,
    }
    cfg.update(webhook)
    off = {"enabled": False}
    return {
        "server": {"state_dir": str(tmp_path), "state_db_url": db_url},
        "exporter": {k: off for k in ("zendesk", "pagerduty", "stripe", "usage", "health")},
        "webhook": cfg,
    }


def webhook_app(tmp_path: Path, db_url: str, clock: Clock, **webhook: Any) -> web.Application:
    return make_app(parse_settings(webhook_settings(tmp_path, db_url, **webhook)), clock=clock)


_SECRET_KEYS = {"bearer_token", "password", "routing_key", "token", "webhook_url"}


class _EnvRef(str):
    """Dumped to YAML as `!env NAME`: config files never hold secrets literally."""


yaml.SafeDumper.add_representer(_EnvRef, lambda dumper, ref: dumper.represent_scalar("!env", ref))


def config_file(settings: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The YAML of `settings` with every secret replaced by `!env VAR`, and those variables."""
    env: dict[str, str] = {}

    def ref(value: str) -> _EnvRef:
        name = f"TENSAFE_TEST_SECRET_{len(env)}"
        env[name] = value
        return _EnvRef(name)

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [ref(v) if key == "pagerduty_webhook_secrets" else walk(v) for v in value]
        if key in _SECRET_KEYS and isinstance(value, str):
            return ref(value)
        return value

    return yaml.safe_dump(walk(settings)), env


async def until(
    check: Callable[[], bool | Awaitable[bool]], seconds: float = 10, every: float = 0.02
) -> None:
    """Poll `check` (sync or async) until it holds; fail after `seconds`: a bound on waiting
    for background work, not a measurement."""
    for _ in range(int(seconds / every)):
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(every)
    raise AssertionError(f"not within {seconds} s")


async def ingest(app: web.Application) -> None:
    """Ingest everything journaled now (the background loop would, a moment later)."""
    await app[INGESTER_KEY].catch_up()


def ingested(apps: Iterable[web.Application], journal_id: int) -> dict[str, int]:
    """What ingesting one journal entry caused, whichever replica ingested it."""
    for app in apps:
        result = app[INGESTER_KEY].recent.get(journal_id)
        if result is not None:
            return {
                "new": result.new_alerts,
                "resolved": result.resolved,
                "duplicates": result.duplicates,
                "deliveries": result.deliveries,
            }
    raise AssertionError(f"journal entry {journal_id} was not ingested")


def signed(body: bytes, secret: str = PD_SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def pd_event(
    event_type: str, incident_key: str, occurred_at: str, event_id: str | None = None
) -> bytes:
    """A PagerDuty webhooks v3 incident event, as PagerDuty sends it (a fresh event id)."""
    return json.dumps(
        {
            "event": {
                "id": event_id or uuid.uuid4().hex[:26].upper(),
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": occurred_at,
                "agent": {"id": "PLH1HKV", "summary": "Tenley Safe", "type": "user_reference"},
                "client": None,
                "data": {
                    "id": "PGR0VU2",
                    "type": "incident",
                    "number": 2,
                    "status": "acknowledged",
                    "incident_key": incident_key,
                    "urgency": "high",
                    "title": "TenSafe API down",
                },
            }
        }
    ).encode()


async def start(
    aiohttp_client: Any, tmp_path: Path, db_url: str, clock: Clock, **cfg: Any
) -> TestClient:  # type: ignore[type-arg]
    client: TestClient = await aiohttp_client(webhook_app(tmp_path, db_url, clock, **cfg))  # type: ignore[type-arg]
    return client


async def receive(client: TestClient, body: dict[str, Any]) -> None:  # type: ignore[type-arg]
    response = await client.post("/api/v1/alerts", json=body, headers=AUTH)
    assert response.status == 200, await response.text()
    await ingest(client.app)


async def only_alert(client: TestClient) -> dict[str, Any]:  # type: ignore[type-arg]
    response = await client.get("/api/v1/alerts", headers=API)
    found = (await response.json())["alerts"]
    assert len(found) == 1
    alert: dict[str, Any] = found[0]
    return alert


async def metric(client: TestClient, name: str, **labels: str) -> float | None:  # type: ignore[type-arg]
    text = await (await client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None
