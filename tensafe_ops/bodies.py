"""Request bodies that are not in the Content-Encoding they claim (corrupt gzip, say).

aiohttp decodes a body while a handler reads it and raises `RequestPayloadError` when it
cannot. The answer is a 400 (senders retry 5xx forever) and one warning. The stream is then
marked finished and the connection closed: otherwise aiohttp, after the answer, tries to read
the rest of the body to keep the connection open, meets the same error again and logs it
with a traceback as an unhandled exception.
"""

from collections.abc import Awaitable, Callable

from aiohttp import web

from tensafe_ops.log import get_logger

log = get_logger("tensafe_ops.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def undecodable(request: web.Request, exc: web.RequestPayloadError) -> web.Response:
    """The 400 for a body that could not be read, logged once."""
    # aiohttp's message is "400, message:\n  Can not decode content-encoding: gzip".
    detail = str(exc).strip().splitlines()[-1].strip()[:100]
    log.warning(
        "request_body_undecodable",
        method=request.method,
        path=request.path,
        content_encoding=request.headers.get("Content-Encoding", "")[:40],
        detail=detail,
        remote=request.remote,
    )
    request.content.feed_eof()  # nothing more can be read from it
    response = web.json_response(
        {"error": "body cannot be decoded", "field": "<body>", "detail": detail}, status=400
    )
    response.force_close()
    return response


@web.middleware
async def undecodable_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every handler that reads a body (`read()`, `post()`, `json()`) gets the same answer."""
    try:
        return await handler(request)
    except web.RequestPayloadError as exc:
        return undecodable(request, exc)
