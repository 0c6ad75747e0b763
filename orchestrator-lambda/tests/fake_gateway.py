"""A payment provider in memory, for unit tests of the payments processor only (the HTTP gateway
is tested against the real simulator process in test_http_gateway.py)."""

from __future__ import annotations

import threading

from orchestrator.payments.gateway import ChargeRequest, GatewayRejected, GatewayUnavailable, PaymentResult


class FakeGateway:
    """The provider's contract in memory: one charge per idempotency key, whatever is asked again.

    `unavailable`: how many calls fail before one gets through (the charge may be made and its
    answer lost: `lose_answer`); `declined`: orders the provider declines; `rejected`: requests it
    refuses as malformed."""

    def __init__(self, *, declined=(), rejected=(), unavailable: int = 0, lose_answer: bool = False) -> None:
        self.charges: dict[str, ChargeRequest] = {}
        self.calls: list[tuple[ChargeRequest, float | None]] = []
        self.declined, self.rejected = set(declined), set(rejected)
        self.unavailable, self.lose_answer = unavailable, lose_answer
        self._lock = threading.Lock()

    def charge(self, request: ChargeRequest, *, deadline: float | None = None) -> PaymentResult:
        with self._lock:
            return self._charge(request, deadline)

    def _charge(self, request: ChargeRequest, deadline: float | None) -> PaymentResult:
        self.calls.append((request, deadline))
        if request.order_id in self.rejected:
            raise GatewayRejected("amount must be positive")
        replayed = request.idempotency_key in self.charges
        if not replayed and (self.unavailable == 0 or self.lose_answer):
            self.charges[request.idempotency_key] = request
        if self.unavailable > 0:
            self.unavailable -= 1
            raise GatewayUnavailable("the answer was lost" if self.lose_answer else "503 from the provider")
        first = self.charges[request.idempotency_key]
        reference = f"ch_{first.idempotency_key}"
        if first.order_id in self.declined:
            return PaymentResult("failed", reference, "card_declined", replayed=replayed)
        return PaymentResult("succeeded", reference, replayed=replayed)
