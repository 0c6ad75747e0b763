"""Request ids: accepted from the caller when sane, otherwise minted; carried in a context var.

The context var is what log lines, downstream HTTP calls and SQS message attributes read, so
the id given to the BFF shows up in every process that handled the request.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from .limits import REQUEST_ID_MAX

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{REQUEST_ID_MAX}}}")

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def is_sane_id(candidate: str | None) -> bool:
    """At most 128 chars of `[A-Za-z0-9._-]`: safe in headers, log lines and SQS attributes."""
    return bool(candidate) and _SANE_REQUEST_ID.fullmatch(candidate) is not None


def accept_or_new(candidate: str | None) -> str:
    """The caller's id if it is at most 128 chars of `[A-Za-z0-9._-]`, else a fresh one."""
    if is_sane_id(candidate):
        return candidate  # type: ignore[return-value]
    return new_request_id()


def get_request_id() -> str | None:
    return current_request_id.get()
