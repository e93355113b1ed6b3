"""API credentials shared by every HTTP API of the process (the webhook's management API and the
operator API): the config models and one check, every comparison in constant time.

Alertmanager's `http_config`, curl and `tensafe-admin` send `Authorization: Bearer <token>` or
HTTP basic auth; either configured scheme is accepted.
"""

import base64
import binascii
import hmac
from typing import Literal

from pydantic import SecretStr, model_validator

from tensafe_ops.model import Model


class BasicAuth(Model):
    username: str
    password: SecretStr


class Credentials(Model):
    """What a client sends: `authorization` (Bearer) and/or `basic_auth`. When both are set,
    either one is accepted."""

    bearer_token: SecretStr | None = None
    basic: BasicAuth | None = None

    @model_validator(mode="after")
    def _something_set(self) -> "Credentials":
        if self.bearer_token is None and self.basic is None:
            raise ValueError("set bearer_token and/or basic, or write `none` to disable auth")
        return self


Auth = Credentials | Literal["none"]


def same(given: str, expected: str) -> bool:
    # The request side may hold anything (even lone surrogates): never fail on it.
    return hmac.compare_digest(given.encode(errors="replace"), expected.encode())


def authorized(auth: Auth, authorization: str | None) -> bool:
    """Whether the Authorization header satisfies `auth` (either configured scheme will do)."""
    if isinstance(auth, str):  # "none" (comparing a model to a string costs a pydantic __eq__)
        return True
    if not authorization:
        return False
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and auth.bearer_token is not None:
        return same(value, auth.bearer_token.get_secret_value())
    if scheme == "basic" and auth.basic is not None:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, sep, password = decoded.partition(":")
        user_ok = same(username, auth.basic.username)
        password_ok = same(password, auth.basic.password.get_secret_value())
        return bool(sep) and user_ok and password_ok
    return False
