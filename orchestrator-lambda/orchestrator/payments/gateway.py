"""The payment gateway as the payments Lambda sees it: one charge per idempotency key.

The contract is a real provider's (Stripe-like): a charge carries an idempotency key, and the
same key always answers the first result and never charges twice, even when the first call's
answer was lost. The payments Lambda uses the order's payment attempt id (from the claim in
orders-service) as that key, so every retry of one order's payment ends in one charge.

- `PaymentResult`: the provider's answer, `succeeded` or `failed` (declined), with its charge id.
- `GatewayUnavailable`: no answer we can trust (timeout, lost connection, 5xx, the key still in
  flight): retry later with the same key.
- `GatewayRejected`: the provider refused the request itself (bad parameters, key reused with
  other parameters): retrying cannot help.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Protocol

Outcome = Literal["succeeded", "failed"]


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str  # the order's payment attempt id
    order_id: int
    customer_id: int
    amount_cents: int  # from orders-service's rows, never from the message
    currency: str = "usd"


@dataclass(frozen=True)
class PaymentResult:
    outcome: Outcome
    reference: str  # the provider's charge id
    reason: str | None = None
    replayed: bool = False  # the provider answered a stored result for this key


class GatewayUnavailable(Exception):
    """The outcome is unknown or the provider is down: retry with the same key."""


class GatewayRejected(Exception):
    """The provider refused the request as malformed or conflicting: never retried."""


class PaymentGateway(Protocol):
    def charge(self, request: ChargeRequest, *, deadline: float | None = None) -> PaymentResult:
        """Charge once per `request.idempotency_key`. `deadline` is a `time.monotonic()` instant
        the call (its timeouts and retries together) must not outlive."""
        ...


# --- in-process simulation (replaced by the HTTP gateway simulator) ----------------------------

SIMULATION_MODES = ("random", "rule_based", "always_succeed", "always_fail")


def stable_draw(order_id: int) -> float:
    """A number in [0, 1) that depends only on the order."""
    digest = hashlib.sha256(f"payment:{order_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SimulatedPaymentGateway:
    """Decides from the request alone (seeded by `order_id`), so a retry gets the same answer."""

    def __init__(self, mode: str, *, success_rate: float = 0.7, max_amount_cents: int = 1_000_000) -> None:
        if mode not in SIMULATION_MODES:
            raise ValueError(f"unknown simulation mode {mode!r}")
        self.mode = mode
        self.success_rate = success_rate
        self.max_amount_cents = max_amount_cents

    def charge(self, request: ChargeRequest, *, deadline: float | None = None) -> PaymentResult:
        reference = "sim_" + hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:24]
        decline = self._decline_reason(request)
        if decline:
            return PaymentResult("failed", reference, decline)
        return PaymentResult("succeeded", reference)

    def _decline_reason(self, request: ChargeRequest) -> str | None:
        if self.mode == "always_succeed":
            return None
        if self.mode == "always_fail":
            return "simulated_decline"
        if self.mode == "rule_based":
            return "amount_over_limit" if request.amount_cents > self.max_amount_cents else None
        return None if stable_draw(request.order_id) < self.success_rate else "simulated_random_decline"
