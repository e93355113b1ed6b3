"""Every endpoint against every kind of wrong credentials: 401 with a WWW-Authenticate, and
nothing stored or changed; the right credentials of one realm never open the other."""

import base64
import json

import pytest

from tests.webhook.am import API, API_TOKEN, TOKEN, am_alert, notification, start
from webhook.handlers import WEBHOOK_KEY

BODY = json.dumps(notification(am_alert("AuthProbe"))).encode()
WINDOW = json.dumps(
    {
        "start": "2026-11-27T11:00:00Z",
        "end": "2026-11-27T13:00:00Z",
        "matchers": ['alertname="AuthProbe"'],
        "reason": "probe",
    }
).encode()

RECEIVERS = [("POST", "/api/v1/alerts", BODY), ("POST", "/api/v1/alerts/basic", BODY)]
MANAGEMENT = [
    ("GET", "/api/v1/alerts", b""),
    ("POST", "/api/v1/alerts/1/ack", b'{"by": "mallory"}'),
    ("GET", "/api/v1/maintenance", b""),
    ("POST", "/api/v1/maintenance", WINDOW),
    ("POST", "/api/v1/maintenance/1/end", b""),
    ("DELETE", "/api/v1/maintenance/1", b""),
    ("GET", "/api/v1/deliveries", b""),
    ("POST", "/api/v1/deliveries/1/retry", b""),
    ("GET", "/api/v1/notifications/failed", b""),
    ("POST", "/api/v1/notifications/1/retry", b""),
]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


WRONG = {
    "none": None,
    "empty": "",
    "scheme only": "Bearer",
    "wrong token": "Bearer not-the-token",
    "token prefix": f"Bearer {API_TOKEN[:-1]}",
    "token plus junk": f"Bearer {API_TOKEN}x",
    "other scheme": f"Token {API_TOKEN}",
    "basic garbage": "Basic !!!",
    "basic wrong password": basic("am", "nope"),
    "basic no colon": "Basic " + base64.b64encode(b"am").decode(),
    "non-ASCII": "Bearer t\u00f6ken",
}


@pytest.fixture
async def client(aiohttp_client, tmp_path, clock):  # type: ignore[no-untyped-def]
    receivers = {
        "/api/v1/alerts": {"auth": {"bearer_token": TOKEN}},
        "/api/v1/alerts/basic": {"auth": {"basic": {"username": "am", "password": "pw-2c9"}}},
    }
    db = f"sqlite+aiosqlite:///{tmp_path}/state.db"
    return await start(aiohttp_client, tmp_path, db, clock, receivers=receivers)


async def test_wrong_credentials_are_401_everywhere(client) -> None:  # type: ignore[no-untyped-def]
    wrong: list[str] = []
    for method, path, body in RECEIVERS + MANAGEMENT:
        for name, header in WRONG.items():
            headers = {} if header is None else {"Authorization": header}
            response = await client.request(method, path, data=body, headers=headers)
            if response.status != 401 or "WWW-Authenticate" not in response.headers:
                wrong.append(f"{method} {path} with {name}: {response.status}")
    # One realm's credentials do not open the other.
    for method, path, body in RECEIVERS:
        response = await client.request(method, path, data=body, headers=API)
        if response.status != 401:
            wrong.append(f"{method} {path} with the API token: {response.status}")
    for method, path, body in MANAGEMENT:
        am = {"Authorization": f"Bearer {TOKEN}"}
        response = await client.request(method, path, data=body, headers=am)
        if response.status != 401:
            wrong.append(f"{method} {path} with Alertmanager's token: {response.status}")
    assert wrong == []
    # Nothing got in: no notification journaled, no window made.
    assert client.app[WEBHOOK_KEY].stats.accepted == 0
    listed = await client.get("/api/v1/maintenance", headers=API)
    assert (await listed.json())["windows"] == []
    failed = await client.get("/api/v1/notifications/failed", headers=API)
    assert (await failed.json())["notifications"] == []


async def test_the_right_credentials_get_in(client) -> None:  # type: ignore[no-untyped-def]
    bearer = {"Authorization": f"bearer  {TOKEN} "}  # scheme case and spaces do not matter
    assert (await client.post("/api/v1/alerts", data=BODY, headers=bearer)).status == 200
    headers = {"Authorization": basic("am", "pw-2c9")}
    assert (await client.post("/api/v1/alerts/basic", data=BODY, headers=headers)).status == 200
    for method, path, body in MANAGEMENT:
        response = await client.request(method, path, data=body, headers=API)
        assert response.status != 401, (method, path)
        assert response.status < 500, (method, path, await response.text())
