"""Trim the vendors' contracts to what the fakes serve and the tests validate.

    python -m tests.contracts.trim SOURCE_DIR   # rewrites tests/contracts/*.json

SOURCE_DIR holds the full contracts (OpenAPI documents carrying `source` and `notes`). Each
OpenAPI document keeps only the operations in `KEEP`, the components they reference
(transitively), and no prose `description` inside schemas (validation never reads it); vendor
extras no test reads (`x-fixtures`, `x-drift`, `x-sideloads`) are dropped. The Alertmanager
contract is small and kept whole. Every output names its source and licence (`LICENSES`).
"""

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

KEEP: dict[str, dict[str, tuple[str, ...]]] = {
    "pagerduty-events": {"/enqueue": ("post",)},
    "pagerduty-rest": {
        "/incidents": ("get",),
        "/oncalls": ("get",),
        "/services": ("get",),
        "/services/{id}": ("get",),
    },
    "stripe": {
        "/v1/subscriptions": ("get",),
        "/v1/customers": ("get",),
        "/v1/customers/{customer}": ("get",),
        "/v1/invoices": ("get",),
        "/v1/invoices/{invoice}": ("get",),
        "/v1/events": ("get",),
    },
    "zendesk": {
        "/api/v2/incremental/tickets/cursor": ("get",),
        "/api/v2/organizations": ("get",),
        "/api/v2/tickets": ("post",),
        "/api/v2/tickets/{ticket_id}": ("get",),
    },
}
"""Per contract: path -> methods the sandbox's fakes serve (and the tests validate)."""

_PAGERDUTY = (
    "No licence stated: PagerDuty/api-schema publishes its OpenAPI documents without a licence "
    "file or info.license; (c) PagerDuty, Inc. Kept trimmed, as an interface description for "
    "compatibility tests only."
)
LICENSES = {
    "alertmanager-webhook": (
        "Apache-2.0 (prometheus/alertmanager). The schema is derived by hand from the sources "
        "named in `source`; the examples are synthetic."
    ),
    "pagerduty-events": _PAGERDUTY,
    "pagerduty-rest": _PAGERDUTY,
    "stripe": "MIT (stripe/openapi LICENSE: Copyright (c) 2011- Stripe, Inc.).",
    "zendesk": (
        "No licence stated: Zendesk publishes this OAS on developer.zendesk.com without one; "
        "(c) Zendesk, Inc. (the repository it was taken from, pbu-projects/z4j, is Apache-2.0, "
        "but the file is Zendesk's). Kept trimmed, as an interface description for "
        "compatibility tests only."
    ),
}
_DROPPED = ("x-fixtures", "x-drift", "x-sideloads")


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _pointer(ref: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in ref.removeprefix("#/").split("/")]


def _without_descriptions(schema: Any, *, property_names: bool = False) -> Any:
    """A schema without its prose; a `properties` map's keys are names, never prose."""
    if isinstance(schema, list):
        return [_without_descriptions(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: _without_descriptions(value, property_names=key == "properties" and not property_names)
        for key, value in schema.items()
        if property_names or not (key == "description" and isinstance(value, str))
    }


def trim(name: str, document: dict[str, Any]) -> dict[str, Any]:
    keep = KEEP[name]
    paths = {
        path: {k: v for k, v in document["paths"][path].items() if k in (*methods, "parameters")}
        for path, methods in keep.items()
    }
    wanted: set[str] = set()
    pending: set[str] = set()
    _refs(paths, pending)
    while pending:
        ref = pending.pop()
        if ref in wanted:
            continue
        wanted.add(ref)
        node: Any = document
        for part in _pointer(ref):
            node = node[int(part)] if isinstance(node, list) else node[part]
        _refs(node, pending)
    components: dict[str, dict[str, Any]] = {}
    for ref in sorted(wanted):
        section, component = _pointer(ref)[1:3]  # a ref may point inside a component
        value = document["components"][section][component]
        if section == "schemas":
            value = _without_descriptions(value)
        components.setdefault(section, {})[component] = value
    if "securitySchemes" in document.get("components", {}):
        components["securitySchemes"] = document["components"]["securitySchemes"]
    head = {
        "source": document["source"],
        "license": LICENSES[name],
        "trimmed": (
            "Only the operations listed in `operations` and the components they reference; "
            "prose descriptions inside schemas removed (tests/contracts/trim.py)."
        ),
        "notes": [n for n in document.get("notes", []) if not any(x in n for x in _DROPPED)],
        "operations": [
            op
            for op in document.get("operations", [])
            if op["method"].lower() in keep.get(op["path"], ())
        ],
    }
    body = {
        key: value
        for key, value in document.items()
        if key not in (*head, "paths", "components", *_DROPPED)
    }
    return head | body | {"paths": paths, "components": components}


def main(source: Path) -> None:
    for name in (*KEEP, "alertmanager-webhook"):
        document = json.loads((source / f"{name}.json").read_text())
        if name in KEEP:
            document = trim(name, document)
        else:
            document = {"source": document["source"], "license": LICENSES[name]} | document
        (HERE / f"{name}.json").write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.contracts.trim SOURCE_DIR")
    main(Path(sys.argv[1]))
