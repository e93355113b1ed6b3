"""Immutable per-source snapshots, rendered to exposition bytes once per refresh.

`/metrics` only concatenates these bytes: it never calls an upstream and never
recomputes a business metric.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from tensafe_ops.metrics import registry_of

CACHED_NOTE = (
    " (cached: refreshed in the background;"
    " see tensafe_exporter_source_last_success_timestamp_seconds)"
)

_OM_EOF = b"# EOF\n"

SHARED_FAMILIES = frozenset({"tensafe_account_join_issues"})
"""Families several sources contribute to (told apart by a `source` label). A family name
may appear only once in an exposition, so these are merged across snapshots at swap time."""


def render(families: Sequence[Metric]) -> tuple[bytes, bytes]:
    """(Prometheus text 0.0.4, OpenMetrics without its closing `# EOF`)."""
    registry = registry_of(families)
    text = generate_latest(registry)
    openmetrics = generate_openmetrics(registry)
    if openmetrics.endswith(_OM_EOF):
        openmetrics = openmetrics[: -len(_OM_EOF)]
    return text, openmetrics


@dataclass(frozen=True)
class Snapshot:
    """One source's last good result."""

    source: str
    text: bytes
    openmetrics: bytes
    taken_at: float
    """Unix time of the refresh that produced it."""
    facts: Mapping[str, Any] = field(default_factory=dict)
    """JSON-able per-account facts other sources (health) join on."""
    shared: tuple[Metric, ...] = ()
    """This source's part of the SHARED_FAMILIES, kept unrendered for merging."""
    overview: Mapping[str, Any] = field(default_factory=dict)
    """JSON-able totals and short lists the operator API reads (`SourceResult.overview`)."""

    @classmethod
    def build(
        cls,
        source: str,
        families: Sequence[Metric],
        taken_at: float,
        facts: Mapping[str, Any] | None = None,
        overview: Mapping[str, Any] | None = None,
    ) -> "Snapshot":
        own = [f for f in families if f.name not in SHARED_FAMILIES]
        shared = tuple(f for f in families if f.name in SHARED_FAMILIES)
        text, openmetrics = render(own)
        return cls(source, text, openmetrics, taken_at, facts or {}, shared, overview or {})

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text.decode(),
            "openmetrics": self.openmetrics.decode(),
            "taken_at": self.taken_at,
            "facts": self.facts,
            "shared": [_family_to_json(f) for f in self.shared],
            "overview": self.overview,
        }

    @classmethod
    def from_json(cls, source: str, data: Mapping[str, Any]) -> "Snapshot":
        return cls(
            source,
            data["text"].encode(),
            data["openmetrics"].encode(),
            float(data["taken_at"]),
            data.get("facts", {}),
            tuple(_family_from_json(f) for f in data.get("shared", [])),
            data.get("overview", {}),
        )


def merge_shared(snapshots: Iterable[Snapshot]) -> list[Metric]:
    """One family per shared name, with every snapshot's samples."""
    merged: dict[str, Metric] = {}
    for snapshot in snapshots:
        for family in snapshot.shared:
            target = merged.setdefault(
                family.name, Metric(family.name, family.documentation, family.type)
            )
            target.samples.extend(family.samples)
    return list(merged.values())


def _family_to_json(family: Metric) -> dict[str, Any]:
    return {
        "name": family.name,
        "help": family.documentation,
        "type": family.type,
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    }


def _family_from_json(data: Mapping[str, Any]) -> Metric:
    family = Metric(data["name"], data["help"], data["type"])
    for name, labels, value in data["samples"]:
        family.add_sample(name, labels, value)
    return family
