"""Paging through the management API's lists: a cursor, a `next` link, and a time window.

Lists are newest first. A page holds at most `limit` rows; when more follow, the answer's
`next` is the URL of the next page (also sent as a `Link: <...>; rel="next"` header, RFC 8288):
the same filters plus a cursor naming the last row shown. The cursor is keyset-based (rows
older than that one), so paging stays correct while new rows arrive (they appear on a new first
page, never twice and never in a gap) and each page costs an index range scan whatever its
depth, unlike an offset. The cursor is opaque: clients pass it back as given.

`since` (inclusive) and `until` (exclusive) take RFC 3339 times and filter on when the row was
recorded: an alert's first receipt, a delivery's creation.
"""

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import TypeAdapter, ValidationError
from yarl import URL

from webhook.ids import parse_id
from webhook.timebounds import BoundedDatetime

LIMIT_DEFAULT = 100
LIMIT_MAX = 1000
_CURSOR_PREFIX = "v1:"
_WHEN = TypeAdapter(BoundedDatetime)


@dataclass(frozen=True)
class Page:
    limit: int
    before: int | None = None
    """Only rows with a smaller id (the cursor)."""
    since: datetime | None = None
    until: datetime | None = None


class PageError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> int:
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    # A forged number must be refused here: past ID_MAX the database driver cannot bind it.
    before = parse_id(decoded.removeprefix(_CURSOR_PREFIX))
    if not decoded.startswith(_CURSOR_PREFIX) or before is None:
        raise PageError("cursor", "cursor is not one this API gave out (pass `next` as is)")
    return before


def _when(query: Mapping[str, str], name: str) -> datetime | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        return _WHEN.validate_python(text)
    except ValidationError as exc:
        detail = exc.errors(include_url=False, include_input=False)[0]["msg"]
        raise PageError(name, f"{name} must be an RFC 3339 time: {detail}") from None


def parse_page(query: Mapping[str, str]) -> Page:
    """`limit`, `cursor`, `since` and `until` from a query string; PageError names the field."""
    text = query.get("limit", str(LIMIT_DEFAULT))
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= LIMIT_MAX:
        raise PageError("limit", f"limit must be an integer from 1 to {LIMIT_MAX}")
    cursor = query.get("cursor")
    page = Page(
        limit=int(text),
        before=None if cursor is None else decode_cursor(cursor),
        since=_when(query, "since"),
        until=_when(query, "until"),
    )
    if page.since is not None and page.until is not None and page.until <= page.since:
        raise PageError("until", "until must be after since")
    return page


def next_url(url: URL, rows: list[dict[str, object]], page: Page) -> str | None:
    """The next page's URL (path and query, the request's filters kept) when `rows` — fetched
    with `limit + 1` — hold more than a page; None on the last page."""
    if len(rows) <= page.limit:
        return None
    last = rows[page.limit - 1]["id"]
    assert isinstance(last, int)
    query = {**url.query, "cursor": encode_cursor(last), "limit": str(page.limit)}
    return str(url.with_query(query))
