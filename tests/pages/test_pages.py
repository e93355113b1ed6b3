"""The pages over HTTP, without a browser (these run on a bare machine too): open as the demo
is, off when configured off, without Prometheus, without the webhook half, with the state store
away, and the files they load."""

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from operations import OPERATIONS_KEY
from operations.pages import PAGES_KEY
from operations.store import OperatorStore
from tensafe_ops.sandbox.server import RunningWorld
from tensafe_ops.storage import create_engine
from tests.operations.conftest import demo_app, demo_client
from tests.test_demo import demo_world

__all__ = ["demo_world"]  # the fixture


async def html(client: TestClient, path: str, status: int = 200) -> str:  # type: ignore[type-arg]
    response = await client.get(path)
    text = await response.text()
    assert response.status == status, text[:500]
    return text


async def test_demo_pages_are_open_and_say_what_is_unknown(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    client = await demo_client(aiohttp_client, demo_world, tmp_path)
    page = await html(client, "/status")
    # No Prometheus in the bare demo: the light is unknown, said once, not on every tile.
    assert 'data-light="unknown"' in page and ">UNKNOWN<" in page
    reason = "no Prometheus configured (operator.prometheus_url)"
    assert page.count(reason) == 1
    assert "Demo: every number on this page comes from the simulated TenSafe world." in page
    customers = await html(client, "/customers")
    api = await (await client.get("/api/v1/customers?band=at_risk")).json()
    for customer in api["customers"]:
        assert f'data-account="{customer["account"]}"' in customers
    assert "Sign out" not in page  # nobody signed in: the demo is open
    index = await html(client, "/")
    assert "<a href='/status'>/status</a>" in index
    login = await client.get("/login?next=/customers", allow_redirects=False)
    assert (login.status, login.headers["Location"]) == (303, "/customers")


async def test_pages_can_be_turned_off(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    client = await aiohttp_client(demo_app(demo_world, tmp_path, pages={"enabled": False}))
    for path in ("/status", "/customers", "/checklist", "/login"):
        assert (await client.get(path)).status == 404
    assert "/status" not in await html(client, "/")
    assert (await client.get("/api/v1/status")).status == 200


async def test_the_files_a_page_loads(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    client = await aiohttp_client(demo_app(demo_world, tmp_path))
    response = await client.get("/checklist")
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none';")
    assert response.headers["Cache-Control"] == "no-store"
    page = await response.text()
    assets = client.app[PAGES_KEY].assets
    for name, asset in assets.files.items():
        url = assets.url(name)
        if name != "favicon.svg":
            assert url in page
        versioned = await client.get(url)
        assert await versioned.read() == asset.body
        assert versioned.headers["Content-Type"].startswith(asset.content_type)
        assert "immutable" in versioned.headers["Cache-Control"]
        stale = await client.get(f"/pages/static/{name}?v=old")
        assert stale.headers["Cache-Control"] == "no-cache"
    assert (await client.get("/pages/static/..%2fhandlers.py")).status == 404
    assert (await client.get("/pages/static/missing.css")).status == 404


async def test_without_the_webhook_half_and_with_the_store_away(
    aiohttp_client: Any, demo_world: RunningWorld, tmp_path: Path
) -> None:
    app = demo_app(demo_world, tmp_path)
    client = await aiohttp_client(app)
    ops = app[OPERATIONS_KEY]
    ops.alerts = None  # as in `serve --role exporter`
    page = await html(client, "/status")
    assert "The webhook does not run in this process: no alerts here." in page

    ops.store = OperatorStore(create_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/db"))
    for path in ("/status", "/customers", "/checklist"):
        down = await html(client, path, status=503)
        assert "state store is unavailable" in down
