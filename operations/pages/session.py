"""How a browser presents the API's credentials to the pages.

A browser cannot send a Bearer token by itself, so the pages accept two things: the same
`Authorization` header as the API (curl, a proxy, a browser that sends basic credentials), or a
session cookie that `/login` sets after checking a token, or a user name and password, against
those same credentials.

The cookie holds no secret and needs no server-side state (any replica can check it): it is
`<scope>.<expires>.<MAC>`, the MAC an HMAC-SHA256 over scope and expiry keyed by a digest of the
credentials it was issued for. Changing those credentials ends every session made with them.
"""

import base64
import hashlib
import hmac
from typing import Literal

from tensafe_ops.auth import Auth, Credentials, authorized

Scope = Literal["api", "read"]
COOKIE = "tensafe_ops_session"
_CONTEXT = b"tensafe-ops status pages session v1\x00"


def _key(credentials: Credentials) -> bytes:
    parts = [_CONTEXT]
    if credentials.bearer_token is not None:
        parts += [b"bearer\x00", credentials.bearer_token.get_secret_value().encode(), b"\x00"]
    if credentials.basic is not None:
        parts += [b"basic\x00", credentials.basic.username.encode(), b"\x00"]
        parts += [credentials.basic.password.get_secret_value().encode(), b"\x00"]
    return hashlib.sha256(b"".join(parts)).digest()


def _mac(credentials: Credentials, scope: Scope, expires: int) -> str:
    digest = hmac.new(_key(credentials), f"{scope}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Gate:
    """Who may see the pages: the API's credentials (`api_auth`), or the read-only ones."""

    def __init__(self, api_auth: Auth, read_auth: Credentials | None) -> None:
        self.api_auth = api_auth
        self.read_auth = read_auth

    @property
    def open(self) -> bool:
        return self.api_auth == "none"

    @property
    def basic_configured(self) -> bool:
        return any(
            isinstance(c, Credentials) and c.basic is not None
            for c in (self.api_auth, self.read_auth)
        )

    def _credentials(self, scope: Scope) -> Credentials | None:
        chosen = self.api_auth if scope == "api" else self.read_auth
        return chosen if isinstance(chosen, Credentials) else None

    def scope_of_header(self, authorization: str | None) -> Scope | None:
        if authorized(self.api_auth, authorization):
            return "api"
        if self.read_auth is not None and authorized(self.read_auth, authorization):
            return "read"
        return None

    def issue(self, scope: Scope, now: float, lifetime: float) -> str:
        credentials = self._credentials(scope)
        if credentials is None:
            raise ValueError(f"no {scope} credentials to sign a session with")
        expires = int(now + lifetime)
        return f"{scope}.{expires}.{_mac(credentials, scope, expires)}"

    def scope_of_cookie(self, value: str | None, now: float) -> Scope | None:
        if not value or len(value) > 200:
            return None
        scope, _, rest = value.partition(".")
        expires_text, _, mac = rest.partition(".")
        if scope not in ("api", "read") or not (expires_text.isascii() and expires_text.isdigit()):
            return None
        checked: Scope = "api" if scope == "api" else "read"
        credentials = self._credentials(checked)
        expires = int(expires_text)
        if credentials is None or expires <= now:
            return None
        expected = _mac(credentials, checked, expires)
        if not hmac.compare_digest(mac.encode(errors="replace"), expected.encode()):
            return None
        return checked

    def scope_of(self, authorization: str | None, cookie: str | None, now: float) -> Scope | None:
        """The scope a request's credentials give; None: show the login page."""
        if self.open:
            return "api"
        return self.scope_of_header(authorization) or self.scope_of_cookie(cookie, now)
