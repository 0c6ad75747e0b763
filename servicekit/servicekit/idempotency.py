"""Idempotency keys as every service sees them: a guarded request, its outcome, the replay cache.

The storage of keys lives with the service that owns them (orders-service keeps them in
orders_db, in the transaction of the change they guard: docs/idempotency.md). What is shared is:
- `IdempotentRequest`: a key's scope (caller identity, method + route template, key) and the
  fingerprint of the request (path parameters and validated body);
- `Outcome`: the answer of a guarded request, fresh or replayed;
- `ReplayCache`: per process, the completed answers this process has replayed. A stored answer
  never changes while its key lives (it is written once, in the transaction that made the change,
  and only expired keys are purged), so answering a retry from memory until the key's
  `expires_at` is exactly what the database would answer, without a round trip
  (docs/adr/0003-in-process-replay-cache.md).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .problems import idempotency_key_mismatch
from .timeutil import utcnow


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
        # scope hash → (raw key, fingerprint, outcome, expires_at)
        self._entries: dict[str, tuple[str, str, Outcome, Any]] = {}
        # How many entries each raw key has (any caller, any route): `may_hold` in O(1).
        self._keys: dict[str, int] = {}
        self._lock = threading.Lock()

    def may_hold(self, key: str) -> bool:
        """False when no entry has this key: then no request with it can be answered from here,
        and the replay middleware passes it on without checking its token or its body."""
        return key in self._keys

    def get(self, request: IdempotentRequest | None) -> Outcome | None:
        """The replay for `request` (422 if the key was used for another request), or None."""
        if request is None or self.max_entries <= 0:
            return None
        entry = self._entries.get(request.scope_hash)
        if entry is None:
            return None
        _key, fingerprint, outcome, expires_at = entry
        if expires_at <= utcnow():
            with self._lock:
                self._forget(request.scope_hash)
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
                    self._forget(scope_hash)
            if request.scope_hash not in self._entries:
                self._keys[request.key] = self._keys.get(request.key, 0) + 1
            self._entries[request.scope_hash] = (request.key, request.fingerprint, outcome, expires_at)

    def _forget(self, scope_hash: str) -> None:
        """Drop one entry (under the lock)."""
        entry = self._entries.pop(scope_hash, None)
        if entry is None:
            return
        key = entry[0]
        left = self._keys[key] - 1
        if left:
            self._keys[key] = left
        else:
            del self._keys[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._keys.clear()
