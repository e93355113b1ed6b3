"""The /metrics endpoint: pre-rendered business exposition plus small live self-metrics.

Business metrics are rendered once per refresh by their owner and only concatenated
here, so a scrape costs a memory copy no matter how many series there are.
"""

import gzip
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from tensafe_ops import __version__
from tensafe_ops.keys import SELF_REGISTRY_KEY

_OM_EOF = b"# EOF\n"


@dataclass(frozen=True)
class Exposition:
    """Pre-rendered series, plain and gzipped (gzip members concatenate into one stream)."""

    text: bytes = b""
    text_gzip: bytes = b""
    openmetrics: bytes = b""
    openmetrics_gzip: bytes = b""

    @classmethod
    def join(cls, parts: Iterable[tuple[bytes, bytes]]) -> "Exposition":
        """From (text, openmetrics-without-EOF) pairs."""
        parts = list(parts)
        text = b"".join(p[0] for p in parts)
        openmetrics = b"".join(p[1] for p in parts)
        return cls(
            text,
            gzip.compress(text, compresslevel=5),
            openmetrics,
            gzip.compress(openmetrics, compresslevel=5),
        )


ExpositionProvider = Callable[[], Exposition]
PRERENDERED_KEY = web.AppKey("prerendered", list[ExpositionProvider])


def _wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept


def _wants_gzip(accept_encoding: str) -> bool:
    return any(part.split(";")[0].strip() == "gzip" for part in accept_encoding.split(","))


async def metrics_handler(request: web.Request) -> web.Response:
    app = request.app
    openmetrics = _wants_openmetrics(request.headers.get("Accept", ""))
    use_gzip = _wants_gzip(request.headers.get("Accept-Encoding", ""))
    registry = app[SELF_REGISTRY_KEY]
    parts = [provider() for provider in app[PRERENDERED_KEY]]
    if openmetrics:
        live = generate_openmetrics(registry)
        body_parts = [p.openmetrics_gzip if use_gzip else p.openmetrics for p in parts]
        content_type = OPENMETRICS_TYPE
    else:
        live = generate_latest(registry)
        body_parts = [p.text_gzip if use_gzip else p.text for p in parts]
        content_type = CONTENT_TYPE_LATEST
    live_part = gzip.compress(live, compresslevel=1) if use_gzip else live
    body = b"".join([*body_parts, live_part])
    headers = {"Content-Type": content_type}
    if use_gzip:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


class StaticCollector:
    """A collector yielding families built beforehand (prometheus_client renders registries)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def registry_of(families: Iterable[Metric]) -> CollectorRegistry:
    """A registry serving exactly these families, to render them."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StaticCollector(families))
    return registry


def build_info(role: str) -> Metric:
    """`tensafe_ops_build_info{version, role} 1`: which release runs, and as which role."""
    family = GaugeMetricFamily(
        "tensafe_ops_build_info",
        "Always 1: the running version and the process's role (all, exporter or webhook).",
        labels=["version", "role"],
    )
    family.add_metric([__version__, role], 1.0)
    return family


def setup(app: web.Application, role: str) -> None:
    app[SELF_REGISTRY_KEY] = CollectorRegistry(auto_describe=False)
    app[SELF_REGISTRY_KEY].register(StaticCollector([build_info(role)]))
    app[PRERENDERED_KEY] = []
    app.router.add_get("/metrics", metrics_handler)
