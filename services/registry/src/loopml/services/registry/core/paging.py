"""Page tokens: an opaque, validated offset into a stable ordering."""

from __future__ import annotations

import base64
import json

from loopml.runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(value: int, field: str = "page_size") -> int:
    if value < 0:
        raise InvalidArgument(field, "must not be negative")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def decode(token: str, field: str = "page_token") -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["o"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument(field, "is not a token this service returned") from None
    if not isinstance(offset, int) or offset < 0:
        raise InvalidArgument(field, "is not a token this service returned")
    return offset


def encode(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def next_token(offset: int, size: int, fetched: int) -> str:
    """Token after a page read with LIMIT size+1 that returned `fetched` rows."""
    return encode(offset + size) if fetched > size else ""
