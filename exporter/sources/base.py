"""The narrow interface every source implements, and what it gets to work with."""

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from prometheus_client.metrics_core import Metric

from exporter.config import SourceConfig
from exporter.stats import UpstreamStats
from tensafe_ops.clock import Clock
from tensafe_ops.storage import StateStore

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class SourceResult:
    families: Sequence[Metric]
    facts: Mapping[str, Any] = field(default_factory=dict)
    """Per-account facts keyed by product account id (JSON-able), for the health join."""
    refresh_again_in: float | None = None
    """Seconds until the next refresh when sooner than the interval (e.g. health waiting for
    its inputs' first sync); None: the source's interval."""
    overview: Mapping[str, Any] = field(default_factory=dict)
    """The source's totals and short lists for the operator API (JSON-able): ticket subjects,
    incident titles and account names may appear here, never in metric labels."""


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


async def off_loop(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a source's pure computation (metrics over 50,000 tickets, MRR over 10,000
    subscriptions: a few hundred ms of CPU each) in a worker thread, so the event loop keeps
    serving scrapes and webhooks meanwhile.

    The caller hands the arguments over: nothing on the loop may change them until `func`
    returns, and a cancelled refresh does not stop the thread, so pass copies or objects that
    are never changed in place. No timeout of its own (unlike `tensafe_ops.http.offload`, for
    SDK calls, whose timeout means the upstream is slow): the runner bounds the whole refresh.
    """
    return await asyncio.to_thread(func, *args, **kwargs)
