"""The webhook half: Alertmanager notifications in, routed deliveries out."""

from aiohttp import web

from webhook.config import WebhookConfig


def setup(app: web.Application, cfg: WebhookConfig) -> None:
    if not cfg.enabled:
        return
