"""Immutable per-source snapshots, rendered to exposition bytes once per refresh.

`/metrics` only concatenates these bytes: it never calls an upstream and never
recomputes a business metric.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

CACHED_NOTE = (
    " (cached: refreshed in the background;"
    " see tensafe_exporter_source_last_success_timestamp_seconds)"
)

_OM_EOF = b"# EOF\n"


class _Families:
    """A throwaway collector yielding already-built metric families."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def render(families: Sequence[Metric]) -> tuple[bytes, bytes]:
    """(Prometheus text 0.0.4, OpenMetrics without its closing `# EOF`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
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

    @classmethod
    def build(
        cls,
        source: str,
        families: Sequence[Metric],
        taken_at: float,
        facts: Mapping[str, Any] | None = None,
    ) -> "Snapshot":
        text, openmetrics = render(families)
        return cls(source, text, openmetrics, taken_at, facts or {})

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text.decode(),
            "openmetrics": self.openmetrics.decode(),
            "taken_at": self.taken_at,
            "facts": self.facts,
        }

    @classmethod
    def from_json(cls, source: str, data: Mapping[str, Any]) -> "Snapshot":
        return cls(
            source,
            data["text"].encode(),
            data["openmetrics"].encode(),
            float(data["taken_at"]),
            data.get("facts", {}),
        )
