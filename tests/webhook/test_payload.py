"""The Alertmanager v4 payload model: contract examples, old and new senders, bad fields."""

import json

import jsonschema
import pytest

from tests.contracts import contract_document
from tests.webhook.am import DATA
from webhook.payload import PayloadError, parse_notification


def test_contract_examples_and_our_payloads_parse() -> None:
    spec = contract_document("alertmanager-webhook")
    examples = dict(spec["examples"])
    ours = {p.name: json.loads(p.read_text()) for p in DATA.glob("*.json")}
    assert len(ours) >= 4
    for name, body in {**examples, **ours}.items():
        jsonschema.validate(body, spec["schema"])  # our own payloads are real-shaped too
        parsed = parse_notification(json.dumps(body).encode())
        assert len(parsed.alerts) == len(body["alerts"]), name
    mixed = parse_notification(json.dumps(examples["mixed_truncated"]).encode())
    assert mixed.truncated_alerts == 3 and mixed.route_labels == {"owner": "platform"}
    firing, gone = mixed.alerts
    assert firing.end is None  # Go's zero time means "still firing"
    assert gone.end is not None and gone.end.isoformat() == "2026-08-21T08:10:11.482913+00:00"


def test_lenient_with_new_fields_strict_with_required() -> None:
    body = dict(contract_document("alertmanager-webhook")["examples"]["firing"])
    newer = {**body, "notification_reason": "a reason from 2027", "tenantID": "eu"}
    assert (
        parse_notification(json.dumps(newer).encode()).notification_reason == "a reason from 2027"
    )
    older = {k: v for k, v in body.items() if k not in ("notification_reason", "routeLabels")}
    assert parse_notification(json.dumps(older).encode()).route_labels == {}
    cases = {
        "version": {**body, "version": "3"},
        "alerts.0.labels.severity": {
            **body,
            "alerts": [{**body["alerts"][0], "labels": {"severity": 1}}],
        },
        "alerts.0.status": {**body, "alerts": [{**body["alerts"][0], "status": "pending"}]},
        "alerts": {**body, "alerts": None},
        "externalURL": {k: v for k, v in body.items() if k != "externalURL"},
    }
    for field, bad in cases.items():
        with pytest.raises(PayloadError) as error:
            parse_notification(json.dumps(bad).encode())
        assert error.value.field == field


def test_naive_timestamps_are_rejected() -> None:
    body = json.loads((DATA / "tensafe_api_down.json").read_text())
    body["alerts"][0]["startsAt"] = "2026-11-27T11:41:07"
    with pytest.raises(PayloadError) as error:
        parse_notification(json.dumps(body).encode())
    assert error.value.field == "alerts.0.startsAt"


@pytest.mark.parametrize(
    ("moment", "field"),
    [
        ("0001-01-01T00:00:00+01:00", "alerts.0.startsAt"),  # before year 1 in UTC
        ("9999-12-31T23:59:59-01:00", "alerts.0.startsAt"),  # after year 9999 in UTC
        (1790000000, "alerts.0.startsAt"),  # epoch numbers are not what Alertmanager sends
    ],
)
def test_out_of_range_and_numeric_times_are_bad_input(moment: object, field: str) -> None:
    body = json.loads((DATA / "tensafe_api_down.json").read_text())
    body["alerts"][0]["startsAt"] = moment
    with pytest.raises(PayloadError) as error:
        parse_notification(json.dumps(body).encode())
    assert error.value.field == field


def test_nul_characters_are_refused() -> None:
    body = json.loads((DATA / "tensafe_api_down.json").read_text())
    body["alerts"][0]["labels"]["instance"] = "api\x00-1"
    with pytest.raises(PayloadError, match="NUL"):
        parse_notification(json.dumps(body).encode())
