"""Row ids as clients write them: in a path (`/api/v1/alerts/42`) or inside a paging cursor."""

ID_MAX = 2**63 - 1
"""Ids are 64-bit: a larger number names nothing (and neither SQLite nor PostgreSQL can even
bind it: SQLite's driver raises OverflowError, asyncpg a DataError)."""


def parse_id(text: str) -> int | None:
    """A positive id written in ASCII digits, or None when `text` cannot name a row."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= ID_MAX else None
