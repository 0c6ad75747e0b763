"""The in-process replay cache (servicekit.idempotency.ReplayCache): what `may_hold` says about a
key follows the entries that carry it, through puts, expiry, eviction and clear."""

from __future__ import annotations

from datetime import timedelta

import pytest

from servicekit.idempotency import IdempotentRequest, Outcome, ReplayCache
from servicekit.problems import Problem
from servicekit.timeutil import utcnow


def _request(key: str, caller: str = "service:orchestrator", body: object = None) -> IdempotentRequest:
    return IdempotentRequest.build(caller=caller, route="POST /orders", key=key, path_params={}, body=body or {})


def _outcome(n: int) -> Outcome:
    return Outcome(status=201, body={"id": n}, replayed=True)


def test_a_key_is_held_while_an_entry_carries_it() -> None:
    cache = ReplayCache()
    later, past = utcnow() + timedelta(hours=1), utcnow() - timedelta(seconds=1)
    assert not cache.may_hold("k1")
    cache.put(_request("k1", "service:orchestrator"), _outcome(1), later)
    cache.put(_request("k1", "user:7"), _outcome(2), past)  # the same key from another caller
    cache.put(_request("k1", "service:orchestrator"), _outcome(1), later)  # the same entry again
    assert cache.may_hold("k1") and not cache.may_hold("k2")
    assert cache.get(_request("k1", "user:7")) is None  # expired: dropped
    assert cache.may_hold("k1")
    assert cache.get(_request("k1")) == _outcome(1)
    with pytest.raises(Problem):
        cache.get(_request("k1", body={"other": True}))
    cache.put(_request("k1", "service:orchestrator"), _outcome(1), past)
    assert cache.get(_request("k1")) is None
    assert not cache.may_hold("k1")


def test_evicted_and_cleared_keys_are_not_held() -> None:
    cache = ReplayCache(max_entries=10)
    later = utcnow() + timedelta(hours=1)
    for n in range(10):
        cache.put(_request(f"k{n}"), _outcome(n), later)
    cache.put(_request("k10"), _outcome(10), later)  # full: the oldest tenth goes
    assert not cache.may_hold("k0")
    assert all(cache.may_hold(f"k{n}") for n in range(1, 11))
    cache.clear()
    assert not any(cache.may_hold(f"k{n}") for n in range(11))


def test_a_disabled_cache_holds_nothing() -> None:
    cache = ReplayCache(max_entries=0)
    cache.put(_request("k1"), _outcome(1), utcnow() + timedelta(hours=1))
    assert not cache.may_hold("k1") and cache.get(_request("k1")) is None
