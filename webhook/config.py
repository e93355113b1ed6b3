"""Webhook receiver configuration (filled in by the webhook issue)."""

from tensafe_ops.model import Model


class WebhookConfig(Model):
    enabled: bool = False
