"""Idempotency keys (docs/idempotency.md), written once for every endpoint.

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

`ReplayCache` keeps, per process, the completed responses this process has replayed: a stored
response never changes while its key lives (it is written once, in the transaction that made
the change, and only expired keys are purged), so answering a retry from memory until the key's
`expires_at` is exactly what the database would answer, without a round trip.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from servicekit.db import MYSQL_LOCK_WAIT_TIMEOUT, is_duplicate_key, mysql_error_code, read, transaction
from servicekit.limits import IDEMPOTENCY_KEY_MAX
from servicekit.timeutil import utcnow

from .. import repository as repo
from .problems import idempotency_in_flight, idempotency_key_mismatch

MAX_KEY_LENGTH = IDEMPOTENCY_KEY_MAX
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
        return cls.with_fingerprint(caller=caller, route=route, key=key, fingerprint=_sha256(canonical))

    @classmethod
    def for_key(
        cls, key: str | None, *, caller: str, route: str, path_params: Mapping[str, Any], body: Any
    ) -> IdempotentRequest | None:
        """`build`, or None when the request has no key (an endpoint where the key is optional)."""
        if key is None:
            return None
        return cls.build(caller=caller, route=route, key=key, path_params=path_params, body=body)

    @classmethod
    def with_fingerprint(cls, *, caller: str, route: str, key: str, fingerprint: str) -> IdempotentRequest:
        """A request whose fingerprint the caller computed (a response it stores for itself)."""
        return cls(
            caller=caller,
            route=route,
            key=key,
            fingerprint=fingerprint,
            scope_hash=_sha256("\n".join((caller, route, key)).encode()),
        )


@dataclass(frozen=True)
class Outcome:
    """A response of a guarded endpoint: fresh, or replayed from the key's stored response."""

    status: int
    body: Any
    replayed: bool = False


class ReplayCache:
    """Completed responses of keys this process has replayed, until each key expires.

    Filled only from replays (a key retried once tends to be retried again), so a first
    request costs nothing extra. Bounded: the oldest entries go first when it is full.
    """

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, tuple[str, Outcome, Any]] = {}
        self._lock = threading.Lock()

    def get(self, request: IdempotentRequest | None) -> Outcome | None:
        """The replay for `request` (422 if the key was used for another request), or None."""
        if request is None or self.max_entries <= 0:
            return None
        entry = self._entries.get(request.scope_hash)
        if entry is None:
            return None
        fingerprint, outcome, expires_at = entry
        if expires_at <= utcnow():
            with self._lock:
                self._entries.pop(request.scope_hash, None)
            return None
        if fingerprint != request.fingerprint:
            raise idempotency_key_mismatch()
        return outcome

    def put(self, request: IdempotentRequest, outcome: Outcome, expires_at: Any) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                for scope_hash in list(self._entries)[: max(1, self.max_entries // 10)]:
                    del self._entries[scope_hash]
            self._entries[request.scope_hash] = (request.fingerprint, outcome, expires_at)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def replay_if_stored(
    session_factory: sessionmaker[Session], request: IdempotentRequest | None, cache: ReplayCache | None = None
) -> Outcome | None:
    """The stored outcome when this key already completed (422 if for another request)."""
    if request is None:
        return None
    stored = read(session_factory, lambda session: repo.find_idempotency_key(session, request.scope_hash))
    if stored is None or stored.response_status is None or stored.expires_at <= utcnow():
        return None
    return _replay(stored, request, cache)


def run_once(
    session_factory: sessionmaker[Session],
    request: IdempotentRequest | None,
    work: Callable[[Session], Outcome],
    *,
    ttl_seconds: int,
    cache: ReplayCache | None = None,
) -> Outcome:
    """Run `work` in one transaction guarded by the key (or unguarded when there is no key)."""
    if request is None:
        return transaction(session_factory, work)

    def guarded(session: Session) -> Outcome:
        claim = _claim(session, request, ttl_seconds, cache)
        if isinstance(claim, Outcome):
            return claim
        outcome = work(session)
        if 200 <= outcome.status < 300:
            repo.store_idempotent_response(session, claim, outcome.status, orjson.dumps(outcome.body).decode())
        else:
            repo.delete_idempotency_key(session, claim)
        return outcome

    return transaction(session_factory, guarded)


def _claim(
    session: Session, request: IdempotentRequest, ttl_seconds: int, cache: ReplayCache | None = None
) -> int | Outcome:
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
            return _replay(stored, request, cache)
        repo.delete_idempotency_key(session, stored.id)  # expired but not purged yet
    raise idempotency_in_flight()


def _replay(stored: Any, request: IdempotentRequest, cache: ReplayCache | None = None) -> Outcome:
    if stored.request_fingerprint != request.fingerprint:
        raise idempotency_key_mismatch()
    if stored.response_status is None:  # pragma: no cover - rows are committed with their response
        raise idempotency_in_flight()
    outcome = Outcome(stored.response_status, orjson.loads(stored.response_body), replayed=True)
    if cache is not None:
        cache.put(request, outcome, stored.expires_at)
    return outcome


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
