"""Opaque cursors for keyset pagination.

A cursor is base64url(JSON) of the position after the last row of a page (for example
`{"id": 41}`). It is opaque to clients: they pass back what they got. Anything that does not
decode to the expected shape is a 400, never a 500 or a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from .limits import CURSOR_MAX, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX
from .problems import Problem

MAX_CURSOR_LENGTH = CURSOR_MAX
DEFAULT_LIMIT = PAGE_LIMIT_DEFAULT
MAX_LIMIT = PAGE_LIMIT_MAX


def invalid_cursor(detail: str = "cursor is not valid; use next_cursor from a previous page") -> Problem:
    return Problem(400, "invalid_cursor", detail, errors={"cursor": [detail]})


def encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(cursor: str, *, int_fields: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    """Decode a cursor whose listed fields must all be positive integers."""
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise invalid_cursor() from None
    if not isinstance(position, dict) or set(position) != set(int_fields):
        raise invalid_cursor()
    for field in int_fields:
        value = position[field]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1 or value > 2**63 - 1:
            raise invalid_cursor()
    return position


def page(data: list[Any], *, limit: int, next_position: dict[str, Any] | None) -> dict[str, Any]:
    """The list envelope: `{"data": [...], "pagination": {"next_cursor", "limit"}}`."""
    return {
        "data": data,
        "pagination": {
            "next_cursor": encode_cursor(next_position) if next_position else None,
            "limit": limit,
        },
    }
