"""Maintenance windows: created, listed, ended early and deleted through the API; they see
what routes see (the effective severity), and every page they hold back leaves a trace."""

from typing import Any

from structlog.testing import capture_logs

from tests.webhook.am import API, am_alert, notification, receive, start

WINDOW = {
    "start": "2026-11-27T11:00:00Z",
    "end": "2026-11-27T14:00:00Z",
    "matchers": ['severity="critical"'],
    "reason": "database upgrade",
    "by": "dana",
}


async def deliveries_of(client: Any, alert_id: int) -> list[tuple[str, str]]:
    found = (await (await client.get("/api/v1/deliveries", headers=API)).json())["deliveries"]
    return sorted((d["target"], d["destination"]) for d in found if d["alert_id"] == alert_id)


async def newest_alert(client: Any) -> dict[str, Any]:
    alerts = (await (await client.get("/api/v1/alerts", headers=API)).json())["alerts"]
    newest: dict[str, Any] = alerts[0]
    return newest


async def test_end_and_delete_windows(aiohttp_client, tmp_path, state_db_url, clock) -> None:  # type: ignore[no-untyped-def]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock)
    created = await (await client.post("/api/v1/maintenance", json=WINDOW, headers=API)).json()
    later = {**WINDOW, "start": "2026-11-28T11:00:00Z", "end": "2026-11-28T12:00:00Z"}
    future = await (await client.post("/api/v1/maintenance", json=later, headers=API)).json()
    await receive(client, notification(am_alert("DatabaseDown", instance="db-1")))
    held = await newest_alert(client)
    assert await deliveries_of(client, held["id"]) == [("slack", "incidents")]

    clock.advance(minutes=30)
    url = f"/api/v1/maintenance/{created['id']}/end"
    assert (await client.post(url)).status == 401
    ended = await client.post(url, headers=API)
    assert ended.status == 200
    assert (await ended.json())["end"] == "2026-11-27T12:30:00Z"
    again = await client.post(url, headers=API)
    assert again.status == 409 and "ended" in (await again.json())["error"]
    not_started = await client.post(f"/api/v1/maintenance/{future['id']}/end", headers=API)
    assert not_started.status == 409 and "DELETE" in (await not_started.json())["error"]
    assert (await client.post("/api/v1/maintenance/999/end", headers=API)).status == 404

    await receive(client, notification(am_alert("DatabaseDown", instance="db-2")))
    paged = await newest_alert(client)
    assert await deliveries_of(client, paged["id"]) == [
        ("pagerduty", "default"),
        ("slack", "incidents"),
    ]
    windows = (await (await client.get("/api/v1/maintenance", headers=API)).json())["windows"]
    assert [w["id"] for w in windows] == [future["id"]]

    delete = f"/api/v1/maintenance/{future['id']}"
    assert (await client.delete(delete)).status == 401
    assert (await client.delete(delete, headers=API)).status == 204
    assert (await client.delete(delete, headers=API)).status == 404
    everything = await client.get("/api/v1/maintenance", params={"all": "1"}, headers=API)
    assert [w["id"] for w in (await everything.json())["windows"]] == [created["id"]]
    for bad in ("/api/v1/maintenance/x", "/api/v1/maintenance/99999999999999999999999"):
        assert (await client.delete(bad, headers=API)).status == 404


async def test_windows_match_the_effective_severity(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    client = await start(
        aiohttp_client,
        tmp_path,
        state_db_url,
        clock,
        severity_overrides={"ReplicationBroken": "critical"},
    )
    await client.post("/api/v1/maintenance", json=WINDOW, headers=API)
    # Labelled warning, made critical by the override: it routes as critical, so the
    # window for critical alerts holds its page back too.
    await receive(client, notification(am_alert("ReplicationBroken", "warning")))
    alert = await newest_alert(client)
    assert alert["severity"] == "critical"
    assert await deliveries_of(client, alert["id"]) == [("slack", "incidents")]
    assert alert["held_back"] == ["pagerduty:default"]


async def test_a_page_held_back_without_a_note_is_recorded_and_logged(
    aiohttp_client, tmp_path, state_db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    routes = [
        {"name": "pages", "matchers": ['severity="critical"'], "targets": ["pagerduty:default"]}
    ]
    client = await start(aiohttp_client, tmp_path, state_db_url, clock, routes=routes)
    await client.post("/api/v1/maintenance", json=WINDOW, headers=API)
    with capture_logs() as logs:
        await receive(client, notification(am_alert("DatabaseDown")))
    alert = await newest_alert(client)
    assert await deliveries_of(client, alert["id"]) == []  # nothing sent, not even a note
    assert alert["held_back"] == ["pagerduty:default"]
    assert alert["maintenance_id"] is not None
    [held] = [e for e in logs if e["event"] == "page_held_back"]
    assert held["alert_id"] == alert["id"] and held["note_to"] is None
    assert held["targets"] == ["pagerduty:default"] and held["log_level"] == "warning"

    await receive(client, notification(am_alert("DatabaseDown", "warning", instance="db-9")))
    unheld = await newest_alert(client)
    assert unheld["held_back"] == []
