"""Cursor pagination over the store's indexes.

Every index is a sorted set whose members all have score 0 and are ids; ids begin with their
creation time, so lexicographic order is creation order and a page boundary is just an id. The
cursor a client sees is that id, base64url-encoded and tagged, so it stays opaque.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from bridge import ids
from bridge.store.errors import InvalidCursor

_TAG = "c1:"
MAX_LIMIT = 100
DEFAULT_LIMIT = 20


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode((_TAG + last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidCursor() from None
    if not text.startswith(_TAG) or not ids.is_id(text[len(_TAG) :], prefix):
        raise InvalidCursor()
    return text[len(_TAG) :]


@dataclass(frozen=True)
class LexRange:
    """Bounds for ZRANGE ... BYLEX REV: `high` first (newest), `low` last."""

    high: str
    low: str


def lex_range(
    prefix: str,
    *,
    after_cursor: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> LexRange:
    """Newest-first range of ids with `prefix`, strictly older than the cursor's id, created in
    [since_ms, until_ms)."""
    high = "+"
    if until_ms is not None:
        high = "(" + ids.new_id(prefix, until_ms)[: len(prefix) + 11]
    if after_cursor is not None:
        candidate = "(" + after_cursor
        high = candidate if high == "+" or candidate < high else high
    low = "-"
    if since_ms is not None:
        low = "[" + ids.new_id(prefix, max(since_ms, 0))[: len(prefix) + 11]
    return LexRange(high=high, low=low)
