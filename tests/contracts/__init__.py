"""Validate fake upstream responses against the vendors' contracts kept beside this file.

The JSON files here are the official API descriptions, trimmed to what the fakes serve (see
README.md for each one's source and licence, and trim.py for how they were cut).

Attach a `ContractRecorder` to a fake's aiohttp app; every response it serves is recorded
and `check()` validates each against the OpenAPI document (schema, status, content type).
"""

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

CONTRACTS = Path(__file__).parent
_NON_OPENAPI_KEYS = ("source", "license", "trimmed", "notes", "operations")


def contract_document(name: str) -> dict[str, Any]:
    """The raw contract JSON (with its `source`, `license` and `notes`)."""
    data: dict[str, Any] = json.loads((CONTRACTS / f"{name}.json").read_text())
    return data


@cache
def openapi(name: str) -> OpenAPI:
    spec = contract_document(name)
    for key in _NON_OPENAPI_KEYS:
        spec.pop(key, None)
    # The fakes listen on loopback, not the vendor host; keep only the server's path prefix
    # (Events API v2 lives under /v2).
    servers = spec.get("servers") or [{"url": "/"}]
    spec["servers"] = [{"url": urlsplit(servers[0]["url"]).path or "/"}]
    return OpenAPI.from_dict(spec)


def alertmanager_examples() -> dict[str, Any]:
    """The Alertmanager webhook contract's example notifications (firing, resolved, ...)."""
    examples: dict[str, Any] = contract_document("alertmanager-webhook")["examples"]
    return examples


@dataclass
class _Request:
    method: str
    path: str
    query: ImmutableMultiDict[str, str]
    headers: Headers
    body: bytes | None
    content_type: str
    host_url: str = "http://localhost"

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path

    @property
    def parameters(self) -> RequestParameters:
        return RequestParameters(query=self.query, header=self.headers, cookie=ImmutableMultiDict())


@dataclass
class _Response:
    status_code: int
    data: bytes
    content_type: str
    headers: Headers


@dataclass
class Exchange:
    request: _Request
    response: _Response


@dataclass
class ContractRecorder:
    contract: str
    exchanges: list[Exchange] = field(default_factory=list)
    skip_paths: tuple[str, ...] = ()
    """Paths that are not part of the contract (e.g. a fake's own control endpoints)."""

    def attach(self, app: web.Application) -> None:
        app.middlewares.append(self._middleware)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.read() if request.can_read_body else None
        response = await handler(request)
        if request.path.startswith(self.skip_paths) if self.skip_paths else False:
            return response
        assert isinstance(response, web.Response), "fakes answer with whole responses"
        raw = response.body if isinstance(response.body, bytes) else b""
        self.exchanges.append(
            Exchange(
                _Request(
                    request.method.lower(),
                    request.path,
                    ImmutableMultiDict(list(request.query.items())),
                    Headers(list(request.headers.items())),
                    body,
                    request.content_type,
                ),
                _Response(
                    response.status,
                    raw,
                    (response.content_type or "application/json").split(";")[0],
                    Headers(list(response.headers.items())),
                ),
            )
        )
        return response

    def check(self) -> int:
        """Validate every recorded response; raise listing each violation. Returns the count."""
        api = openapi(self.contract)
        problems = []
        for ex in self.exchanges:
            try:
                api.validate_response(ex.request, ex.response)  # type: ignore[arg-type]
            except Exception as exc:
                details = getattr(exc, "schema_errors", None) or getattr(exc, "__cause__", None)
                problems.append(
                    f"{ex.request.method.upper()} {ex.request.path} -> {ex.response.status_code}: "
                    f"{exc} {details or ''}"[:2000]
                )
        assert not problems, "responses break the contract:\n" + "\n".join(problems)
        return len(self.exchanges)
