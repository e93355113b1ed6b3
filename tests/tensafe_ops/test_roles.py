"""`server.role` / `serve --role`: which halves one process runs, through the real app factory."""

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from exporter import RUNNER_KEY
from tensafe_ops.app import make_app
from tensafe_ops.cli import main
from tensafe_ops.settings import ConfigError, parse_settings
from tests.webhook.am import AUTH, am_alert, config_file, notification, webhook_settings
from tests.webhook.test_receive import free_port
from webhook.handlers import WEBHOOK_KEY

WEBHOOK_TASKS = ("webhook-", "dispatch-", "journal-")


class Upstream:
    """An upstream that answers 503 to everything and remembers what was asked."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.asked = asyncio.Event()

    async def anything(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        self.asked.set()
        return web.Response(status=503)


async def counting_upstream(aiohttp_server: Any) -> tuple[TestServer, Upstream]:
    upstream = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream.anything)
    server: TestServer = await aiohttp_server(app)
    return server, upstream


def role_settings(tmp_path: Path, role: str, zendesk_url: str) -> dict[str, Any]:
    """Both halves configured; the Zendesk source points at a counting upstream."""
    settings = webhook_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    settings["server"]["role"] = role
    settings["exporter"]["zendesk"] = {
        "base_url": zendesk_url,
        "token": "zendesk-token",
        "max_retries": 0,
    }
    return settings


async def metric_names(client: TestClient) -> set[str]:  # type: ignore[type-arg]
    response = await client.get("/metrics")
    assert response.status == 200
    return {f.name for f in text_string_to_metric_families(await response.text())}


async def build_role(client: TestClient) -> str:  # type: ignore[type-arg]
    text = await (await client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        if family.name == "tensafe_ops_build_info":
            return str(family.samples[0].labels["role"])
    raise AssertionError("no tensafe_ops_build_info")


def running_task_names() -> set[str]:
    return {task.get_name() for task in asyncio.all_tasks()}


async def test_exporter_role_serves_sources_and_no_webhook(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    server, upstream = await counting_upstream(aiohttp_server)
    settings = parse_settings(role_settings(tmp_path, "exporter", str(server.make_url(""))))
    app = make_app(settings)
    client: TestClient = await aiohttp_client(app)  # type: ignore[type-arg]

    await asyncio.wait_for(upstream.asked.wait(), 5)  # the Zendesk source runs
    assert RUNNER_KEY in app
    assert WEBHOOK_KEY not in app
    assert not [n for n in running_task_names() if n.startswith(WEBHOOK_TASKS)]
    body = notification(am_alert("TensafeApiDown"))
    assert (await client.post("/api/v1/alerts", json=body, headers=AUTH)).status == 404
    assert (await client.get("/api/v1/deliveries")).status == 404
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    names = await metric_names(client)
    assert "tensafe_exporter_source_up" in names
    assert not [n for n in names if n.startswith("tensafe_webhook_")]
    assert await build_role(client) == "exporter"


async def test_webhook_role_receives_and_runs_no_source(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    server, upstream = await counting_upstream(aiohttp_server)
    settings = parse_settings(role_settings(tmp_path, "webhook", str(server.make_url(""))))
    assert settings.exporter.zendesk.enabled  # configured, yet not run by this role
    app = make_app(settings)
    client: TestClient = await aiohttp_client(app)  # type: ignore[type-arg]

    body = notification(am_alert("TensafeApiDown"))
    assert (await client.post("/api/v1/alerts", json=body, headers=AUTH)).status == 200
    assert {"webhook-sweep", "webhook-ingest"} <= running_task_names()
    assert not [n for n in running_task_names() if n.startswith("source:")]
    assert RUNNER_KEY not in app
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    names = await metric_names(client)
    assert "tensafe_webhook_notifications_accepted" in names
    assert not [n for n in names if n.startswith("tensafe_exporter_")]
    assert await build_role(client) == "webhook"
    await asyncio.sleep(0.3)
    assert upstream.hits == []


async def test_all_role_runs_both_halves(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    server, upstream = await counting_upstream(aiohttp_server)
    settings = parse_settings(role_settings(tmp_path, "all", str(server.make_url(""))))
    client: TestClient = await aiohttp_client(make_app(settings))  # type: ignore[type-arg]

    body = notification(am_alert("TensafeApiDown"))
    assert (await client.post("/api/v1/alerts", json=body, headers=AUTH)).status == 200
    await asyncio.wait_for(upstream.asked.wait(), 5)
    names = await metric_names(client)
    assert {"tensafe_exporter_source_up", "tensafe_webhook_notifications_accepted"} <= names
    assert await build_role(client) == "all"


def test_role_defaults_to_all() -> None:
    assert parse_settings({}).server.role == "all"


def test_webhook_role_without_the_webhook_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"server": {"role": "webhook"}})
    assert "server.role is webhook but webhook.enabled is false" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_settings({"server": {"role": "both"}})
    assert caught.value.details[0][0] == "server.role"


def test_role_flag_is_validated_like_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"server": {"state_dir": str(tmp_path)}}))
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--role", "webhook"])
    assert result.exit_code == 1
    assert "server.role is webhook but webhook.enabled is false" in result.output
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--role", "both"])
    assert result.exit_code == 2
    assert "'both' is not one of 'all', 'exporter', 'webhook'" in result.output


async def test_serve_role_flag_overrides_the_file(tmp_path: Path) -> None:
    """The real CLI: --role exporter beats server.role: all in the file."""
    text, env = config_file(role_settings(tmp_path, "all", "http://127.0.0.1:9"))
    config = tmp_path / "config.yaml"
    config.write_text(text)
    port = free_port()
    cli = Path(sys.executable).parent / "tensafe-ops"
    process = await asyncio.create_subprocess_exec(
        str(cli),
        *("serve", "--config", str(config), "--port", str(port), "--role", "exporter"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(30):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{base}/healthz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.1)
            async with session.post(f"{base}/api/v1/alerts", json={}, headers=AUTH) as response:
                assert response.status == 404
            async with session.get(f"{base}/metrics") as response:
                assert 'tensafe_ops_build_info{role="exporter"' in await response.text()
    finally:
        process.terminate()
        assert await process.wait() == 0
