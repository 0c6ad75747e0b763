"""Answers the BFF keeps for itself, in the idempotency key table (docs/idempotency.md).

The BFF answers a retried order placement with the answer it gave the first time, whatever has
happened since (the customer deleted, customers-service down). It has no database of its own, so
it keeps that answer here, beside the keys of the downstream steps, scoped to its own identity:
- `store`: the first answer stored under a key wins; storing again with the same fingerprint
  answers the stored one (`replayed`), with another fingerprint it is a 422;
- `lookup`: the stored answer, or 404.
Rows expire with the other keys (IDEMPOTENCY_TTL_SECONDS) and are purged by the sweeper.
"""

from __future__ import annotations

from typing import Any

import orjson

from servicekit.auth import Principal
from servicekit.db import read
from servicekit.problems import not_found
from servicekit.timeutil import iso_utc, utcnow

from .. import repository as repo
from . import idempotency
from .context import ServiceContext
from .idempotency import IdempotentRequest, Outcome

STORED_RESPONSE_ROUTE = "stored response"


def _view(key: str, fingerprint: str, outcome: Outcome) -> dict[str, Any]:
    return {
        "key": key,
        "fingerprint": fingerprint,
        "status": outcome.status,
        "body": outcome.body,
        "replayed": outcome.replayed,
    }


def store_response(
    ctx: ServiceContext, principal: Principal, key: str, *, fingerprint: str, status: int, body: Any
) -> tuple[dict[str, Any], bool]:
    """→ (the stored answer, whether this call stored it)."""
    request = IdempotentRequest.with_fingerprint(
        caller=principal.identity, route=STORED_RESPONSE_ROUTE, key=key, fingerprint=fingerprint
    )
    # Nothing to do but keep it: the key row is inserted with the answer, one statement (a twin's
    # INSERT waits on the unique index, then replays the first answer or is the 422).
    outcome = idempotency.run_once(
        ctx.connect,
        request,
        lambda _conn: Outcome(status, body),
        ttl_seconds=ctx.settings.idempotency_ttl_seconds,
        claim_last=True,
    )
    return _view(key, fingerprint, outcome), not outcome.replayed


def lookup_response(ctx: ServiceContext, principal: Principal, key: str) -> dict[str, Any]:
    scope_hash = IdempotentRequest.with_fingerprint(
        caller=principal.identity, route=STORED_RESPONSE_ROUTE, key=key, fingerprint=""
    ).scope_hash
    stored = read(ctx.connect, lambda conn: repo.find_idempotency_key(conn, scope_hash))
    if stored is None or stored.response_status is None or stored.expires_at <= utcnow():
        raise not_found("stored_response", key)
    outcome = Outcome(stored.response_status, orjson.loads(stored.response_body), replayed=True)
    return {**_view(key, stored.request_fingerprint, outcome), "expires_at": iso_utc(stored.expires_at)}
