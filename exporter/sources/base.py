"""The narrow interface every source implements, and what it gets to work with."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from prometheus_client.metrics_core import Metric

from exporter.config import SourceConfig
from exporter.stats import UpstreamStats
from tensafe_ops.clock import Clock
from tensafe_ops.storage import StateStore


@dataclass(frozen=True)
class SourceResult:
    families: Sequence[Metric]
    facts: Mapping[str, Any] = field(default_factory=dict)
    """Per-account facts keyed by product account id (JSON-able), for the health join."""


@dataclass(frozen=True)
class SourceContext:
    state: StateStore
    stats: UpstreamStats
    clock: Clock
    facts: "FactsView"


class FactsView(Protocol):
    """Read access to the other sources' latest facts (used by the health source)."""

    def facts(self, source: str) -> Mapping[str, Any] | None: ...


class Source(Protocol):
    name: str

    async def refresh(self, now: datetime) -> SourceResult:
        """Fetch from upstream and compute this source's metric families.

        Raise `tensafe_ops.http.UpstreamError` (or anything) on failure: the runner keeps
        the previous snapshot and marks the source down.
        """
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class ScheduledSource:
    source: Source
    config: SourceConfig
