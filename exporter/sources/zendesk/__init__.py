"""Zendesk: open tickets, first-response SLA, ticket flow and tags, per-account ticket facts.

See `source.py` for the sync, `metrics.py` for the series and `exporter.sla` for the rules.
"""

from exporter.config import ZendeskConfig
from exporter.sources.base import Source, SourceContext
from exporter.sources.zendesk.source import ZendeskSource


def create(cfg: ZendeskConfig, context: SourceContext) -> Source:
    return ZendeskSource(cfg, context)


__all__ = ["ZendeskSource", "create"]
