"""A payment provider in memory, for unit tests of the payments processor only (the HTTP gateway
is tested against the real simulator process in test_http_gateway.py)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from orchestrator.payments.gateway import ChargeRequest, PaymentResult


class FakeGateway:
    """One result per idempotency key, as a real provider keeps it; `decline(request)` returns a
    decline reason, or None to approve. Every request is recorded."""

    def __init__(self, decline: Callable[[ChargeRequest], str | None] | None = None) -> None:
        self.decline = decline or (lambda _request: None)
        self.requests: list[ChargeRequest] = []
        self.results: dict[str, PaymentResult] = {}
        self._lock = threading.Lock()

    def charge(self, request: ChargeRequest, *, deadline: float | None = None) -> PaymentResult:
        with self._lock:
            self.requests.append(request)
            first = self.results.get(request.idempotency_key)
            if first is not None:
                return dataclasses.replace(first, replayed=True)
            reason = self.decline(request)
            result = PaymentResult("failed" if reason else "succeeded", f"ch_fake{len(self.results) + 1}", reason)
            self.results[request.idempotency_key] = result
            return result
