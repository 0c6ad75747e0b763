"""Idempotency keys (docs/conventions.md "Idempotency", SPEC §7), written once for every endpoint.

One transaction per attempt:
  INSERT the key row  → a concurrent twin blocks on the unique scope_hash until the first
                        commits, then gets a duplicate key, reads the stored response and
                        replays it (or 422 if its request differs); a lock wait timeout while
                        blocked becomes 409 idempotency_in_flight with Retry-After.
  the business change → the same transaction, so the key exists iff the change happened.
  store the response  → only 2xx outcomes: a failed request changed nothing (its rollback also
                        removes the key row), so a retry with the same key runs again.

`replay_if_stored` is the same read done before any work, so a replay needs nothing but the
database (no downstream call, no locks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from servicekit.db import MYSQL_LOCK_WAIT_TIMEOUT, is_duplicate_key, mysql_error_code, transaction, unit_of_work
from servicekit.timeutil import utcnow

from .. import repository as repo
from .problems import idempotency_in_flight, idempotency_key_mismatch

MAX_KEY_LENGTH = 255
PURGE_BATCH_SIZE = 1000


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class IdempotentRequest:
    """One request guarded by a key: its scope (who, which route, which key) and fingerprint."""

    caller: str  # Principal.identity, e.g. "service:orchestrator"
    route: str  # method + route template, e.g. "POST /orders/{order_id}/confirm"
    key: str
    fingerprint: str  # sha256 of canonical JSON of path params + validated body
    scope_hash: str

    @classmethod
    def build(
        cls, *, caller: str, route: str, key: str, path_params: Mapping[str, Any], body: Any
    ) -> IdempotentRequest:
        canonical = orjson.dumps({"path": path_params, "body": body}, option=orjson.OPT_SORT_KEYS, default=str)
        return cls(
            caller=caller,
            route=route,
            key=key,
            fingerprint=_sha256(canonical),
            scope_hash=_sha256("\n".join((caller, route, key)).encode()),
        )


@dataclass(frozen=True)
class Outcome:
    """A response of a guarded endpoint: fresh, or replayed from the key's stored response."""

    status: int
    body: Any
    replayed: bool = False


def replay_if_stored(session_factory: sessionmaker[Session], request: IdempotentRequest | None) -> Outcome | None:
    """The stored outcome when this key already completed (422 if for another request)."""
    if request is None:
        return None
    with unit_of_work(session_factory) as session:
        stored = repo.find_idempotency_key(session, request.scope_hash)
    if stored is None or stored.response_status is None or stored.expires_at <= utcnow():
        return None
    return _replay(stored, request)


def run_once(
    session_factory: sessionmaker[Session],
    request: IdempotentRequest | None,
    work: Callable[[Session], Outcome],
    *,
    ttl_seconds: int,
) -> Outcome:
    """Run `work` in one transaction guarded by the key (or unguarded when there is no key)."""
    if request is None:
        return transaction(session_factory, work)

    def guarded(session: Session) -> Outcome:
        claim = _claim(session, request, ttl_seconds)
        if isinstance(claim, Outcome):
            return claim
        outcome = work(session)
        if 200 <= outcome.status < 300:
            repo.store_idempotent_response(session, claim, outcome.status, orjson.dumps(outcome.body).decode())
        else:
            repo.delete_idempotency_key(session, claim)
        return outcome

    return transaction(session_factory, guarded)


def _claim(session: Session, request: IdempotentRequest, ttl_seconds: int) -> int | Outcome:
    """Insert the key row (its id), or the outcome to replay when a twin already completed."""
    now = utcnow()
    for _ in range(3):
        try:
            return repo.insert_idempotency_key(
                session,
                scope_hash=request.scope_hash,
                caller=request.caller,
                route=request.route,
                key=request.key,
                fingerprint=request.fingerprint,
                now=now,
                expires_at=now + timedelta(seconds=ttl_seconds),
            )
        except IntegrityError as exc:
            if not is_duplicate_key(exc):
                raise
        except OperationalError as exc:
            if mysql_error_code(exc) == MYSQL_LOCK_WAIT_TIMEOUT:
                raise idempotency_in_flight() from None
            raise
        # The INSERT waited for the holder of this key to finish: what it stored is committed.
        stored = repo.find_idempotency_key(session, request.scope_hash)
        if stored is None:
            continue  # purged meanwhile; claim it again
        if stored.expires_at > now:
            return _replay(stored, request)
        repo.delete_idempotency_key(session, stored.id)  # expired but not purged yet
    raise idempotency_in_flight()


def _replay(stored: Any, request: IdempotentRequest) -> Outcome:
    if stored.request_fingerprint != request.fingerprint:
        raise idempotency_key_mismatch()
    if stored.response_status is None:  # pragma: no cover - rows are committed with their response
        raise idempotency_in_flight()
    return Outcome(stored.response_status, orjson.loads(stored.response_body), replayed=True)


def purge_expired(session_factory: sessionmaker[Session], *, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Delete keys past their expiry, in short batches so no transaction holds many locks."""

    def purge_batch(session: Session) -> int:
        return repo.delete_idempotency_keys(session, repo.expired_idempotency_key_ids(session, utcnow(), batch_size))

    purged = 0
    while True:
        deleted = transaction(session_factory, purge_batch)
        purged += deleted
        if deleted < batch_size:
            return purged
