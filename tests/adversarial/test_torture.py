"""Torture payloads: malformed requests to every endpoint get the 4xx that says what is wrong
(Alertmanager retries 5xx forever and drops 4xx, PagerDuty disables a subscription that
fails), never a 5xx, and leave nothing stored that breaks a later read."""

import gzip
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.webhook.am import API, AUTH, am_alert, notification, pd_event, signed, start

VALID = json.dumps(notification(am_alert("TortureTest"))).encode()
HUGE_ID = "9223372036854775808"  # 2**63: past SQLite's INTEGER and PostgreSQL's BIGINT


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 400


def receiver(name: str, body: bytes, status: int = 400, **headers: str) -> Case:
    return Case(name, "POST", "/api/v1/alerts", body, {**AUTH, **headers}, status)


def window(name: str, **changes: Any) -> Case:
    body = {
        "start": "2026-11-27T11:00:00Z",
        "end": "2026-11-27T12:00:00Z",
        "matchers": ['a="b"'],
        "reason": "r",
    }
    return Case(name, "POST", "/api/v1/maintenance", json.dumps(body | changes).encode(), API)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


CASES = [
    # Content encodings: what the body claims to be and is not.
    receiver("gzip that is not gzip", VALID, **{"Content-Encoding": "gzip"}),
    receiver(
        "corrupt gzip",
        gzip.compress(VALID)[:-12] + b"\x00" * 12,
        **{"Content-Encoding": "gzip"},
    ),
    receiver("truncated gzip", gzip.compress(VALID)[:40], **{"Content-Encoding": "gzip"}),
    receiver("deflate that is not", VALID, **{"Content-Encoding": "deflate"}),
    receiver("brotli, not installed", b"\x1b\x00", **{"Content-Encoding": "br"}),
    receiver("valid gzip", gzip.compress(VALID), 200, **{"Content-Encoding": "gzip"}),
    receiver("valid deflate", zlib.compress(VALID), 200, **{"Content-Encoding": "deflate"}),
    receiver(
        "gzip bomb (1 GiB of zeros inflated)",
        gzip.compress(b"0" * (64 * 1024 * 1024)),
        413,
        **{"Content-Encoding": "gzip"},
    ),
    # Bodies that are not a notification.
    receiver("empty body", b""),
    receiver("null", b"null"),
    receiver("array", b"[]"),
    receiver("deep nesting", nested(100_000)),
    receiver("not UTF-8", VALID.replace(b"TortureTest", b"Torture\xff\xfeTest")),
    receiver("UTF-8 BOM", b"\xef\xbb\xbf" + VALID),
    receiver("NUL escape", VALID.replace(b"TortureTest", b"Torture\\u0000Test")),
    receiver("lone surrogate", VALID.replace(b"TortureTest", b"Torture\\ud800Test")),
    receiver("huge number", VALID.replace(b'"truncatedAlerts": 0', b'"truncatedAlerts": 1e999')),
    receiver(
        "negative truncated", VALID.replace(b'"truncatedAlerts": 0', b'"truncatedAlerts": -1')
    ),
    receiver(
        "epoch startsAt", VALID.replace(b'"startsAt": "2026-11-27T11:50:00Z"', b'"startsAt": 0')
    ),
    receiver(
        "startsAt without zone",
        VALID.replace(b'"startsAt": "2026-11-27T11:50:00Z"', b'"startsAt": "2026-11-27T11:50:00"'),
    ),
    receiver(
        "startsAt in year 10000 UTC",
        VALID.replace(b"2026-11-27T11:50:00Z", b"9999-12-31T23:59:59-01:00"),
    ),
    receiver("version 3", VALID.replace(b'"version": "4"', b'"version": "3"')),
    receiver("fingerprint not hex", VALID.replace(b'"fingerprint": "', b'"fingerprint": "z')),
    receiver("over the body limit", b" " * (1024 * 1024 + 1), 413),
    # Path ids: only positive 64-bit integers name anything.
    Case("ack id 2**63", "POST", f"/api/v1/alerts/{HUGE_ID}/ack", b'{"by":"x"}', API, 404),
    Case("ack id 0", "POST", "/api/v1/alerts/0/ack", b'{"by":"x"}', API, 404),
    Case("ack id -1", "POST", "/api/v1/alerts/-1/ack", b'{"by":"x"}', API, 404),
    Case("ack id in Arabic digits", "POST", "/api/v1/alerts/%D9%A3/ack", b'{"by":"x"}', API, 404),
    Case("ack id 1e3", "POST", "/api/v1/alerts/1e3/ack", b'{"by":"x"}', API, 404),
    Case("retry delivery 2**63", "POST", f"/api/v1/deliveries/{HUGE_ID}/retry", b"", API, 404),
    Case(
        "retry notification 2**63", "POST", f"/api/v1/notifications/{HUGE_ID}/retry", b"", API, 404
    ),
    Case("end window 2**63", "POST", f"/api/v1/maintenance/{HUGE_ID}/end", b"", API, 404),
    Case("delete window 2**63", "DELETE", f"/api/v1/maintenance/{HUGE_ID}", b"", API, 404),
    # Query parameters.
    Case("limit 0", "GET", "/api/v1/alerts?limit=0", headers=API),
    Case("limit 1001", "GET", "/api/v1/alerts?limit=1001", headers=API),
    Case("limit huge", "GET", f"/api/v1/deliveries?limit={HUGE_ID}", headers=API),
    Case("limit text", "GET", "/api/v1/notifications/failed?limit=ten", headers=API),
    Case("limit '²'", "GET", "/api/v1/notifications/failed?limit=%C2%B2", headers=API),
    Case("state unknown", "GET", "/api/v1/alerts?state=open", headers=API),
    Case("severity unknown", "GET", "/api/v1/alerts?severity=page", headers=API),
    Case("delivery state unknown", "GET", "/api/v1/deliveries?state=failed", headers=API),
    # Management bodies.
    Case("ack not JSON", "POST", "/api/v1/alerts/1/ack", b"by=dana", API),
    Case("ack empty by", "POST", "/api/v1/alerts/1/ack", b'{"by":""}', API),
    Case("ack NUL by", "POST", "/api/v1/alerts/1/ack", b'{"by":"a\\u0000b"}', API),
    Case(
        "ack long by", "POST", "/api/v1/alerts/1/ack", json.dumps({"by": "x" * 201}).encode(), API
    ),
    Case("ack extra field", "POST", "/api/v1/alerts/1/ack", b'{"by":"x","as":"root"}', API),
    Case(
        "ack corrupt gzip",
        "POST",
        "/api/v1/alerts/1/ack",
        b'{"by":"x"}',
        {**API, "Content-Encoding": "gzip"},
    ),
    window("window without matchers", matchers=[]),
    window("window with 51 matchers", matchers=['a="b"'] * 51),
    window("window with a huge matcher", matchers=['a=~"' + "x" * 2000 + '"']),
    window("window epoch start", start=1e20),
    window("window start 'now'", start="now"),
    window("window NUL reason", reason="a\u0000b"),
    Case("wrong method", "PUT", "/api/v1/maintenance", b"{}", API, 405),
]


def pagerduty(name: str, body: bytes, status: int, **headers: str) -> Case:
    return Case(
        name,
        "POST",
        "/api/v1/pagerduty/webhook",
        body,
        {"X-PagerDuty-Signature": signed(body), **headers},
        status,
    )


ACK = pd_event(
    "incident.acknowledged", "tensafe:0123456789abcdef:2026-11-27T11:50:00Z", "2026-11-27T11:55:00Z"
)
PAGERDUTY_CASES = [
    pagerduty("signed, not JSON", b"not json", 400),
    pagerduty("signed, no event", b"{}", 400),
    pagerduty("naive occurred_at", ACK.replace(b'11:55:00Z"', b'11:55:00"'), 400),
    pagerduty(
        "occurred_at before year 1 in UTC",
        ACK.replace(b"2026-11-27T11:55:00Z", b"0001-01-01T00:00:00+01:00"),
        400,
    ),
    pagerduty(
        "incident key of 10,000 characters", ACK.replace(b"tensafe:0123", b"x" * 10_000), 200
    ),
    pagerduty("X-Webhook-Id of 8,000 characters", ACK, 200, **{"X-Webhook-Id": "w" * 8000}),
    pagerduty("agent with NUL", ACK.replace(b'"Tenley Safe"', b'"Tenley\\u0000Safe"'), 200),
    pagerduty("event type not a string", ACK.replace(b'"incident.acknowledged"', b"7"), 400),
    Case("unsigned", "POST", "/api/v1/pagerduty/webhook", ACK, {}, 401),
    Case(
        "signed with another secret",
        "POST",
        "/api/v1/pagerduty/webhook",
        ACK,
        {"X-PagerDuty-Signature": signed(ACK, "another")},
        401,
    ),
    Case(
        "signature for another body",
        "POST",
        "/api/v1/pagerduty/webhook",
        ACK + b" ",
        {"X-PagerDuty-Signature": signed(ACK)},
        401,
    ),
]


@pytest.fixture
async def client(aiohttp_client, tmp_path, state_db_url, clock):  # type: ignore[no-untyped-def]
    return await start(aiohttp_client, tmp_path, state_db_url, clock)


async def send(client: Any, case: Case) -> tuple[int, str]:
    response = await client.request(case.method, case.path, data=case.body, headers=case.headers)
    return response.status, await response.text()


async def test_torture_payloads_get_the_right_4xx(client) -> None:  # type: ignore[no-untyped-def]
    wrong: list[str] = []
    for case in CASES + PAGERDUTY_CASES:
        status, text = await send(client, case)
        if status != case.status:
            wrong.append(f"{case.name}: {status} (expected {case.status}) {text[:200]}")
    assert wrong == []
    # Whatever was accepted reads back: every list endpoint still answers 200.
    for path in (
        "/api/v1/alerts",
        "/api/v1/deliveries",
        "/api/v1/maintenance?all=true",
        "/api/v1/notifications/failed",
    ):
        assert (await client.get(path, headers=API)).status == 200, path


async def test_a_400_names_the_field(client) -> None:  # type: ignore[no-untyped-def]
    status, text = await send(
        client, receiver("gzip that is not gzip", VALID, **{"Content-Encoding": "gzip"})
    )
    assert status == 400 and json.loads(text)["field"] == "<body>"
    status, text = await send(
        client, CASES[[c.name for c in CASES].index("startsAt in year 10000 UTC")]
    )
    assert json.loads(text)["field"] == "alerts.0.startsAt"


async def test_a_notification_over_the_limit_is_logged_loudly(client) -> None:  # type: ignore[no-untyped-def]
    """Alertmanager drops a 413 without retrying: the log is the only trace."""
    many = notification(*(am_alert("Flood", instance=f"i-{n}") for n in range(4000)))
    with capture_logs() as logs:
        response = await client.post("/api/v1/alerts", json=many, headers=AUTH)
    assert response.status == 413
    [logged] = [e for e in logs if e["event"] == "notification_too_large"]
    assert logged["log_level"] == "error" and "max_alerts" in logged["hint"]
    assert logged["body_limit_bytes"] == 1024 * 1024
