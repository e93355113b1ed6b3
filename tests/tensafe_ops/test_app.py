import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tensafe_ops import app as tensafe_app
from tensafe_ops.app import READY_PINGS_KEY, make_app
from tensafe_ops.keys import STATE_STORE_KEY
from tensafe_ops.settings import parse_settings


def settings_for(tmp_path: Path, db_url: str | None = None) -> dict[str, object]:
    off = {"enabled": False}
    server: dict[str, object] = {"state_dir": str(tmp_path)}
    if db_url:
        server["state_db_url"] = db_url
    return {
        "server": server,
        "exporter": {k: off for k in ("zendesk", "pagerduty", "stripe", "usage", "health")},
    }


async def test_health_ready_and_metrics(aiohttp_client, tmp_path: Path, state_db_url: str) -> None:  # type: ignore[no-untyped-def]
    app = make_app(parse_settings(settings_for(tmp_path, state_db_url)))
    client: TestClient = await aiohttp_client(app)  # type: ignore[type-arg]
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["state_db"] == "ok"
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(await response.text())}
    assert "tensafe_exporter_demo_mode" in names
    om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    body = await om.text()
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")


async def test_readyz_fails_when_state_db_is_gone(aiohttp_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(parse_settings(settings_for(tmp_path)))
    client: TestClient = await aiohttp_client(app)  # type: ignore[type-arg]
    (tmp_path / "tensafe-ops.db").unlink()
    (tmp_path / "tensafe-ops.db").mkdir()  # the path exists but is no database
    await app[STATE_STORE_KEY].engine.dispose()
    ready = await client.get("/readyz")
    assert ready.status == 503


async def test_a_ping_readyz_gave_up_on_is_cancelled_at_shutdown(  # type: ignore[no-untyped-def]
    aiohttp_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(parse_settings(settings_for(tmp_path)))
    store = app[STATE_STORE_KEY]

    async def hung_ping() -> None:  # a database that never answers
        await asyncio.Event().wait()

    monkeypatch.setattr(store, "ping", hung_ping)
    monkeypatch.setattr(tensafe_app, "READY_TIMEOUT", 0.1)
    client: TestClient = await aiohttp_client(app)  # type: ignore[type-arg]
    ready = await client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["state_db"] == "TimeoutError"
    [ping] = app[READY_PINGS_KEY]  # still running, for this app only
    assert not ping.done()
    await client.close()
    assert ping.cancelled()
