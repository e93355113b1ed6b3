"""One notifier per target: sends a stored delivery and says whether a failure is retryable."""

from collections.abc import Mapping

from aiohttp import ClientSession

from webhook.notifiers.base import Notifier
from webhook.notifiers.pagerduty import PagerDutyNotifier
from webhook.notifiers.slack import SlackNotifier
from webhook.notifiers.zendesk import ZendeskNotifier
from webhook.outbox import Target
from webhook.targets import DestinationsConfig

__all__ = ["Notifier", "PagerDutyNotifier", "SlackNotifier", "ZendeskNotifier", "build_notifiers"]


def build_notifiers(
    session: ClientSession, destinations: DestinationsConfig, *, timeout: float
) -> Mapping[Target, Notifier]:
    return {
        "slack": SlackNotifier(session, destinations.slack, timeout=timeout),
        "pagerduty": PagerDutyNotifier(session, destinations.pagerduty, timeout=timeout),
        "zendesk": ZendeskNotifier(session, destinations.zendesk, timeout=timeout),
    }
