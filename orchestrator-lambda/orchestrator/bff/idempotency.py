"""The client's idempotency key, and the keys the BFF derives from it for each downstream step.

A client key means "this one business operation". The BFF turns it into one key per user and
step, `sha256(user identity | step | client key)`, so that:
- the create and the confirm of one checkout never share a key (each is replayed on its own);
- two users who happen to pick the same key never collide in orders-service, where every key the
  BFF sends is scoped to the single caller `service:orchestrator`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from servicekit.contracts import is_valid_idempotency_key
from servicekit.problems import Problem, validation_error

from .validation import MAX_IDEMPOTENCY_KEY

IDEMPOTENCY_HEADERS = ("Idempotency-Key", "X-Idempotency-Key")


def client_key(headers: Mapping[str, str], body_key: str | None) -> str:
    """The key from `Idempotency-Key`, its alias `X-Idempotency-Key`, or the body's `idempotency_key`
    (given in several places, they must be equal)."""
    # Whitespace around a header value is not part of it (RFC 9110 §5.5); a body value is taken as is.
    candidates = {name: headers[name].strip() for name in IDEMPOTENCY_HEADERS if headers.get(name) is not None}
    if body_key is not None:
        candidates["idempotency_key"] = body_key
    if not candidates:
        raise Problem(
            400,
            "idempotency_key_required",
            "This operation needs an Idempotency-Key header (or idempotency_key in the body)",
            errors={"Idempotency-Key": ["Missing idempotency key."]},
        )
    values = set(candidates.values())
    if len(values) > 1:
        raise validation_error(
            {name: ["Idempotency keys given in several places must be equal."] for name in candidates}
        )
    key = values.pop()
    if not is_valid_idempotency_key(key):
        raise validation_error(
            {
                next(iter(candidates)): [
                    f"Must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters, no outer spaces."
                ]
            }
        )
    return key


def optional_client_key(headers: Mapping[str, str]) -> str | None:
    """The key of a route where it is optional (restock): the headers only, checked like `client_key`."""
    if not any(headers.get(name) is not None for name in IDEMPOTENCY_HEADERS):
        return None
    return client_key(headers, None)


def derive_key(identity: str, step: str, key: str) -> str:
    return hashlib.sha256(f"{identity}|{step}|{key}".encode()).hexdigest()


def default_correlation_id(identity: str, key: str) -> str:
    """Stable across retries of one operation, so a replay answers the same correlation id."""
    return "corr-" + derive_key(identity, "correlation", key)[:32]
