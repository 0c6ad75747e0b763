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

`run_once(..., claim_last=True)`, for a unit of work whose first statement locks the row that
every twin of the request locks too (confirm: the order), stores the key last, with its response,
in one INSERT sent with the COMMIT (servicekit.db.send_with_commit: no round trip of its own):
  the business change → a twin waits for the row lock, then finds the work done and fails
                        (e.g. 409 invalid state), so
  on a problem          → the key is read: a completed twin's stored response is replayed (or 422
                        if its request differs), else the problem stands;
  on a 2xx outcome     → INSERT the key with the response, with the COMMIT: a duplicate means a
                        twin with the same key completed first (another row, so no lock kept
                        them apart): the COMMIT fails, nothing of this transaction is committed,
                        and the twin's response is replayed (or 422).
Either way the key exists iff the change happened, as with the claim first. With the claim
first, the response (or the claim's removal, on a failure) also goes with the COMMIT.

A unit of work may end in `LockLast`: its outcome is known before its last statements, which take
row locks that many requests queue for (create: a hot product's stock). Those statements run
after the key is stored, in a round trip of its own, so a twin holding the key is waited for
with none of those locks held. Create stores its key last this way: no row keeps its twins
apart, but the key's unique index does (a twin's INSERT waits for the first to end, then
replays it) and all else of the losing twin is rolled back with it.

`ReplayCache` (servicekit.idempotency) keeps, per process, the completed responses this process
has replayed; servicekit.replay answers retries from it before the web framework does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from servicekit.db import (
    MYSQL_LOCK_WAIT_TIMEOUT,
    failed_in_commit_batch,
    is_duplicate_key,
    is_lock_busy,
    mysql_error_code,
    read,
    transaction,
)
from servicekit.idempotency import IdempotentRequest, Outcome, ReplayCache
from servicekit.limits import IDEMPOTENCY_KEY_MAX
from servicekit.problems import Problem
from servicekit.timeutil import utcnow

from .. import repository as repo
from .problems import idempotency_in_flight, idempotency_key_mismatch

__all__ = [
    "IdempotentRequest",
    "LockLast",
    "Outcome",
    "ReplayCache",
    "lock_or_replay",
    "replay_if_stored",
    "run_once",
    "purge_expired",
]

T = TypeVar("T")

MAX_KEY_LENGTH = IDEMPOTENCY_KEY_MAX
PURGE_BATCH_SIZE = 1000


@dataclass(frozen=True)
class LockLast:
    """What a unit of work answers, and its last statements (`finish`), which take contended row
    locks: they run once the key is stored, just before the commit. `finish` may still fail
    (a Problem, or an exception of the caller's); the whole transaction is rolled back then."""

    outcome: Outcome
    finish: Callable[[Connection], None]


Work = Callable[[Connection], "Outcome | LockLast"]


def _split(result: Outcome | LockLast) -> tuple[Outcome, Callable[[Connection], None] | None]:
    return (result.outcome, result.finish) if isinstance(result, LockLast) else (result, None)


def _unguarded(work: Work) -> Callable[[Connection], Outcome]:
    def run(conn: Connection) -> Outcome:
        outcome, finish = _split(work(conn))
        if finish is not None:
            finish(conn)
        return outcome

    return run


def replay_if_stored(
    connect: Callable[[], Connection], request: IdempotentRequest | None, cache: ReplayCache | None = None
) -> Outcome | None:
    """The stored outcome when this key already completed (422 if for another request)."""
    if request is None:
        return None
    return read(connect, lambda conn: _stored_replay(conn, request, cache))


def _stored_replay(conn: Connection, request: IdempotentRequest, cache: ReplayCache | None) -> Outcome | None:
    """The outcome to replay when this key's row holds a live, completed answer (422 if for
    another request); None when there is no such row."""
    stored = repo.find_idempotency_key(conn, request.scope_hash)
    if stored is None or stored.response_status is None or stored.expires_at <= utcnow():
        return None
    return _replay(stored, request, cache)


def _replay_or_clear(conn: Connection, request: IdempotentRequest, cache: ReplayCache | None) -> Outcome | None:
    """After a duplicate key (the twin's row is committed): its outcome to replay, or None (claim
    again) when the row was purged meanwhile, or has expired and is deleted here."""
    stored = repo.find_idempotency_key(conn, request.scope_hash)
    if stored is None:
        return None
    if stored.expires_at > utcnow():
        return _replay(stored, request, cache)
    repo.delete_idempotency_key(conn, stored.id)  # expired but not purged yet
    return None


def run_once(
    connect: Callable[[], Connection],
    request: IdempotentRequest | None,
    work: Work,
    *,
    ttl_seconds: int,
    cache: ReplayCache | None = None,
    claim_last: bool = False,
) -> Outcome:
    """Run `work` in one transaction guarded by the key (or unguarded when there is no key)."""
    if request is None:
        return transaction(connect, _unguarded(work))
    if claim_last:
        return _run_claiming_last(connect, request, work, ttl_seconds, cache)

    def guarded(conn: Connection) -> Outcome:
        claim = _claim(conn, request, ttl_seconds, cache)
        if isinstance(claim, Outcome):
            return claim
        outcome, finish = _split(work(conn))
        if finish is not None:
            finish(conn)  # first: its writes sent with the COMMIT may wait for locks, the key's not
        if 200 <= outcome.status < 300:
            repo.store_idempotent_response(conn, claim, outcome.status, orjson.dumps(outcome.body).decode())
        else:
            repo.delete_idempotency_key(conn, claim, with_commit=True)
        return outcome

    return transaction(connect, guarded)


class _ReplayInstead(Exception):
    """Roll the transaction back and answer a completed twin's stored outcome instead."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__()
        self.outcome = outcome


def _run_claiming_last(
    connect: Callable[[], Connection],
    request: IdempotentRequest,
    work: Work,
    ttl_seconds: int,
    cache: ReplayCache | None,
) -> Outcome:
    key_with_commit = False

    def guarded(conn: Connection) -> Outcome:
        nonlocal key_with_commit
        key_with_commit = False
        try:
            outcome, finish = _split(work(conn))
        except Problem:
            replay = _stored_replay(conn, request, cache)
            if replay is not None:
                raise _ReplayInstead(replay) from None
            raise
        if 200 <= outcome.status < 300:
            body = orjson.dumps(outcome.body).decode()
            if finish is None:
                _store_with_commit(conn, request, ttl_seconds, (outcome.status, body))
                key_with_commit = True
            else:
                # The key's own round trip, before `finish` takes the contended locks: a twin
                # holding the key is waited for (or found completed) with none of them held.
                claim = _claim(conn, request, ttl_seconds, cache, response=(outcome.status, body))
                if isinstance(claim, Outcome):
                    raise _ReplayInstead(claim)
        if finish is not None:
            finish(conn)  # our key row is not committed: a problem here is not a twin's answer
        return outcome  # not a 2xx: nothing stored, as with the claim first

    for _ in range(3):
        try:
            return transaction(connect, guarded)
        except _ReplayInstead as replay:
            return replay.outcome
        except IntegrityError as exc:
            if not is_duplicate_key(exc):
                raise
        except OperationalError as exc:
            # Of the writes sent with this COMMIT only the key could wait: a twin holds it, still running.
            if key_with_commit and mysql_error_code(exc) == MYSQL_LOCK_WAIT_TIMEOUT and failed_in_commit_batch(exc):
                raise idempotency_in_flight() from None
            raise
        # The COMMIT failed on our key: a twin's row has it. Everything of ours was rolled back.
        replay = transaction(connect, lambda conn: _replay_or_clear(conn, request, cache))
        if replay is not None:
            return replay
    raise idempotency_in_flight()


def lock_or_replay(
    conn: Connection,
    request: IdempotentRequest,
    cache: ReplayCache | None,
    lock: Callable[[Connection, bool], T],
) -> T:
    """The first statement of a `claim_last` unit of work: `lock(conn, nowait)` takes the row
    that every twin of the request locks first. When that row is busy, a completed twin's stored
    answer is replayed without waiting for the lock (read without a lock; the caller's
    transaction is rolled back); with none, it waits for the lock as usual.

    Retries of a completed request that no worker has cached yet would otherwise queue on the row
    one after the other, each holding it for its own round trips: a retry storm's tail. A first
    try pays nothing more, unless the row is busy (one key lookup then)."""
    try:
        return lock(conn, True)
    except OperationalError as exc:
        if not is_lock_busy(exc):
            raise
    replay = _stored_replay(conn, request, cache)
    if replay is not None:
        raise _ReplayInstead(replay)
    return lock(conn, False)


def _store_with_commit(
    conn: Connection, request: IdempotentRequest, ttl_seconds: int, response: tuple[int, str]
) -> None:
    now = utcnow()
    repo.insert_completed_idempotency_key_with_commit(
        conn, request, now=now, expires_at=now + timedelta(seconds=ttl_seconds), response=response
    )


def _claim(
    conn: Connection,
    request: IdempotentRequest,
    ttl_seconds: int,
    cache: ReplayCache | None = None,
    *,
    response: tuple[int, str] | None = None,
) -> int | Outcome:
    """Insert the key row (its id), or the outcome to replay when a twin already completed.
    With `response` (status, body), the row is inserted completed."""
    now = utcnow()
    for _ in range(3):
        try:
            return repo.insert_idempotency_key(
                conn, request, now=now, expires_at=now + timedelta(seconds=ttl_seconds), response=response
            )
        except IntegrityError as exc:
            if not is_duplicate_key(exc):
                raise
        except OperationalError as exc:
            if mysql_error_code(exc) == MYSQL_LOCK_WAIT_TIMEOUT:
                raise idempotency_in_flight() from None
            raise
        # The INSERT waited for the holder of this key to finish: what it stored is committed.
        replay = _replay_or_clear(conn, request, cache)
        if replay is not None:
            return replay
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


def purge_expired(connect: Callable[[], Connection], *, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Delete keys past their expiry, in short batches so no transaction holds many locks."""

    def purge_batch(conn: Connection) -> int:
        return repo.delete_idempotency_keys(conn, repo.expired_idempotency_key_ids(conn, utcnow(), batch_size))

    purged = 0
    while True:
        deleted = transaction(connect, purge_batch)
        purged += deleted
        if deleted < batch_size:
            return purged
