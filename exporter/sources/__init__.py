"""One module per upstream; each turns its API into metric families and per-account facts."""

from exporter.config import ExporterConfig
from exporter.sources.base import ScheduledSource, SourceContext


def build_sources(cfg: ExporterConfig, context: SourceContext) -> list[ScheduledSource]:
    """The enabled sources, each with its own schedule."""
    sources: list[ScheduledSource] = []
    return sources
