"""Request authentication, every comparison in constant time (`hmac.compare_digest`).

Alertmanager's `http_config` sends `Authorization: Bearer <credentials>` or HTTP basic auth.
PagerDuty webhooks v3 sign the raw body: `X-PagerDuty-Signature: v1=<hex HMAC-SHA256>`, with
several comma-separated signatures while a secret rotates.
"""

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

from pydantic import SecretStr

from webhook.config import Auth


def _same(given: str, expected: str) -> bool:
    # The request side may hold anything (even lone surrogates): never fail on it.
    return hmac.compare_digest(given.encode(errors="replace"), expected.encode())


def authorized(auth: Auth, authorization: str | None) -> bool:
    """Whether the Authorization header satisfies `auth` (either configured scheme will do)."""
    if auth == "none":
        return True
    if not authorization:
        return False
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and auth.bearer_token is not None:
        return _same(value, auth.bearer_token.get_secret_value())
    if scheme == "basic" and auth.basic is not None:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, sep, password = decoded.partition(":")
        user_ok = _same(username, auth.basic.username)
        password_ok = _same(password, auth.basic.password.get_secret_value())
        return bool(sep) and user_ok and password_ok
    return False


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
            valid |= _same(signature, expected)
    return valid
