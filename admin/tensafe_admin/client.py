"""The HTTP side: where the service is (flags, environment, config file), one request at a time,
and errors as one clear line.

Settings come from, in order: command-line flags, the environment (`TENSAFE_ADMIN_URL`,
`TENSAFE_ADMIN_TOKEN`, `PROMETHEUS_URL`, `TENSAFE_ADMIN_TZ`), then
`~/.config/tensafe-admin/config.toml` (or `$TENSAFE_ADMIN_CONFIG`), e.g.

    url = "https://tensafe-ops.internal:9877"
    token = "..."                      # sent as a Bearer token
    prometheus_url = "http://127.0.0.1:9090"
    tz = "Europe/Berlin"
"""

import os
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

DEFAULT_URL = "http://127.0.0.1:9877"
PROMETHEUS_HEADER = "X-Prometheus-URL"
SPINNER_AFTER = 1.0
"""Seconds before a spinner appears on a terminal."""


class AdminError(Exception):
    """A failure worth one line to the user, and the exit code that goes with it."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Settings:
    url: str
    token: str | None
    prometheus_url: str | None
    tz: str | None


def config_path() -> Path:
    explicit = os.environ.get("TENSAFE_ADMIN_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tensafe-admin" / "config.toml"


def read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AdminError(f"cannot read {path}: {exc}") from None
    unknown = set(data) - {"url", "token", "prometheus_url", "tz"}
    if unknown:
        raise AdminError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    return data


def resolve(
    url: str | None, token: str | None, prometheus_url: str | None, tz: str | None
) -> Settings:
    """Flags first, then the environment, then the config file."""
    file = read_config(config_path())

    def pick(flag: str | None, env: str, key: str) -> str | None:
        value = flag or os.environ.get(env) or file.get(key)
        return None if value in (None, "") else str(value)

    return Settings(
        url=(pick(url, "TENSAFE_ADMIN_URL", "url") or DEFAULT_URL).rstrip("/"),
        token=pick(token, "TENSAFE_ADMIN_TOKEN", "token"),
        prometheus_url=pick(prometheus_url, "PROMETHEUS_URL", "prometheus_url"),
        tz=pick(tz, "TENSAFE_ADMIN_TZ", "tz"),
    )


@contextmanager
def spinner(console: Console, text: str) -> Iterator[None]:
    """A spinner on a terminal, only once the request has taken over a second."""
    if not console.is_terminal:
        yield
        return
    status = console.status(text)
    timer = threading.Timer(SPINNER_AFTER, status.start)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        status.stop()


def shown_url(url: str) -> str:
    """`url` as an error shows it: without the user, password and query it may carry (a URL
    like https://user:secret@host/ is valid in --url and TENSAFE_ADMIN_URL)."""
    try:
        return str(httpx.URL(url).copy_with(username=None, password=None, query=None))
    except httpx.InvalidURL:
        return "the configured URL"


class Client:
    def __init__(self, settings: Settings, console: Console, timeout: float = 30.0) -> None:
        self.settings = settings
        self.console = console
        headers = {"User-Agent": "tensafe-admin"}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        if settings.prometheus_url:
            headers[PROMETHEUS_HEADER] = settings.prometheus_url
        self.http = httpx.Client(base_url=settings.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        with spinner(self.console, f"{method} {path}"):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TimeoutException:
                raise AdminError(
                    f"tensafe-ops at {shown_url(self.settings.url)} did not answer in time"
                ) from None
            except httpx.HTTPError as exc:
                where = shown_url(self.settings.url)
                raise AdminError(
                    f"cannot reach tensafe-ops at {where} ({type(exc).__name__})"
                ) from None
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_error:
            detail = body.get("error") if isinstance(body, dict) else response.text[:200]
            field = body.get("field") if isinstance(body, dict) else None
            where = f" ({field})" if field else ""
            hint = ""
            if response.status_code == 401:
                hint = " (set TENSAFE_ADMIN_TOKEN or --token)"
            if field == PROMETHEUS_HEADER:
                # The user never typed the header's name: say where its value came from.
                where = " (--prometheus-url or PROMETHEUS_URL: unset it to use the service's own)"
            raise AdminError(f"tensafe-ops answered {response.status_code}: {detail}{where}{hint}")
        if body is None:
            raise AdminError(f"tensafe-ops answered {response.status_code} without JSON")
        return body

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body or {})
