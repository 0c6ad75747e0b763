"""Faults the simulator can be told to inject, so tests can prove a client survives them.

- `error_every_n` / `error_rate`: answer `error_status` (5xx) to a charge request before anything
  is looked up or charged. Every Nth charge request, and/or each with probability `error_rate`.
- `slow_seconds` (every `slow_every_n`th new charge): hold the key as "in flight", wait, then
  charge. A client that times out and retries under the same key meets the 409 of a key in
  flight, then the replay of the finished charge.
- `lose_answer_every_n`: every Nth new charge is committed to the ledger, then the connection is
  dropped without an HTTP answer (the client cannot know whether it was charged).

Counters start at zero when the faults are (re)configured, so "every third" counts from then.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

ERROR_STATUSES = (500, 502, 503, 504)


class InvalidFaults(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Faults:
    error_every_n: int = 0  # 0 = off
    error_rate: float = 0.0
    error_status: int = 500
    slow_every_n: int = 1
    slow_seconds: float = 0.0  # 0 = off
    lose_answer_every_n: int = 0  # 0 = off

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Faults:
        """Validate a whole fault set (missing fields take their defaults: off)."""
        known = {f.name: f for f in fields(cls)}
        errors = {name: "unknown fault" for name in data if name not in known}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                continue
            kind = int if known[name].type in ("int", int) else float
            try:
                if isinstance(value, bool) or value is None:
                    raise ValueError
                number = kind(value)
                if kind is int and isinstance(value, float) and not value.is_integer():
                    raise ValueError
            except (TypeError, ValueError):
                errors[name] = f"must be {'an integer' if kind is int else 'a number'}"
                continue
            values[name] = number
        faults = cls(**values)
        for name, problem in faults._range_errors().items():
            errors.setdefault(name, problem)
        if errors:
            raise InvalidFaults(errors)
        return faults

    def _range_errors(self) -> dict[str, str]:
        errors = {}
        for name in ("error_every_n", "lose_answer_every_n"):
            if not 0 <= getattr(self, name) <= 1_000_000:
                errors[name] = "must be between 0 (off) and 1000000"
        if not 1 <= self.slow_every_n <= 1_000_000:
            errors["slow_every_n"] = "must be between 1 and 1000000"
        if not 0.0 <= self.error_rate <= 1.0:
            errors["error_rate"] = "must be between 0 and 1"
        if self.error_status not in ERROR_STATUSES:
            errors["error_status"] = f"must be one of {', '.join(map(str, ERROR_STATUSES))}"
        if not 0.0 <= self.slow_seconds <= 120.0:
            errors["slow_seconds"] = "must be between 0 (off) and 120"
        return errors

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    """The current faults and their counters; thread-safe (one per server)."""

    def __init__(self, faults: Faults | None = None, *, rng: random.Random | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = rng or random.Random()
        self._faults = faults or Faults()
        self._counters = {"charge_requests": 0, "new_charges": 0, "committed_charges": 0}

    def configure(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._counters = dict.fromkeys(self._counters, 0)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"faults": self._faults.as_dict(), "counters": dict(self._counters)}

    def error_for_charge_request(self) -> int | None:
        """Called once per authenticated, well-formed charge request: a status to fail it with, or None."""
        with self._lock:
            self._counters["charge_requests"] += 1
            faults = self._faults
            if faults.error_every_n and self._counters["charge_requests"] % faults.error_every_n == 0:
                return faults.error_status
            if faults.error_rate and self._rng.random() < faults.error_rate:
                return faults.error_status
            return None

    def delay_for_new_charge(self) -> float:
        """Called once per new charge (key claimed, not in the ledger): seconds to wait before charging."""
        with self._lock:
            self._counters["new_charges"] += 1
            faults = self._faults
            if faults.slow_seconds and self._counters["new_charges"] % faults.slow_every_n == 0:
                return faults.slow_seconds
            return 0.0

    def lose_answer_of_committed_charge(self) -> bool:
        """Called once per charge committed to the ledger: drop the connection instead of answering?"""
        with self._lock:
            self._counters["committed_charges"] += 1
            every = self._faults.lose_answer_every_n
            return bool(every) and self._counters["committed_charges"] % every == 0
