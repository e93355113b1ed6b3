"""Request authentication, every comparison in constant time (`hmac.compare_digest`).

Alertmanager's `http_config` sends `Authorization: Bearer <credentials>` or HTTP basic auth.
PagerDuty webhooks v3 sign the raw body: `X-PagerDuty-Signature: v1=<hex HMAC-SHA256>`, with
several comma-separated signatures while a secret rotates.
"""

import hashlib
import hmac
from collections.abc import Sequence

from pydantic import SecretStr

from tensafe_ops.auth import authorized, same

__all__ = ["authorized", "pagerduty_signature_valid"]


def pagerduty_signature_valid(
    body: bytes, header: str | None, secrets: Sequence[SecretStr]
) -> bool:
    """True when any `v1=` signature in the header is the HMAC of `body` under any secret."""
    if not header:
        return False
    given = [part.strip()[3:] for part in header.split(",") if part.strip().startswith("v1=")]
    valid = False
    for secret in secrets:
        expected = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        for signature in given:
            valid |= same(signature, expected)
    return valid
