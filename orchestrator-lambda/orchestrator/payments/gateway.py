"""Settling a payment: the gateway interface and its simulation.

The simulated gateway decides from the event alone (seeded by `order_id`), so a redelivered
message gets the same answer and a retry never flips an outcome.

Modes (`PAYMENT_SIMULATION_MODE`):
- `random`: succeeds for a fixed pseudo-random share of orders, `PAYMENT_SUCCESS_RATE` (0.7):
  the draw is sha256("payment:<order_id>") read as a number in [0, 1).
- `rule_based`: declines when `amount_cents` > `PAYMENT_RULE_MAX_AMOUNT_CENTS` (1,000,000 =
  10,000.00, a per-order credit limit), approves everything else.
- `always_succeed`, `always_fail`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Protocol

from ..payment_events import PaymentRequested

Outcome = Literal["succeeded", "failed"]


@dataclass(frozen=True)
class PaymentResult:
    outcome: Outcome
    reference: str
    reason: str | None = None


class PaymentGateway(Protocol):
    def charge(self, request: PaymentRequested) -> PaymentResult: ...


def _order_digest(order_id: int) -> bytes:
    return hashlib.sha256(f"payment:{order_id}".encode()).digest()


def stable_draw(order_id: int) -> float:
    """A number in [0, 1) that depends only on the order."""
    return int.from_bytes(_order_digest(order_id)[:8], "big") / 2**64


class SimulatedPaymentGateway:
    def __init__(self, mode: str, *, success_rate: float = 0.7, max_amount_cents: int = 1_000_000) -> None:
        if mode not in ("random", "rule_based", "always_succeed", "always_fail"):
            raise ValueError(f"unknown simulation mode {mode!r}")
        self.mode = mode
        self.success_rate = success_rate
        self.max_amount_cents = max_amount_cents

    def charge(self, request: PaymentRequested) -> PaymentResult:
        reference = "sim_" + _order_digest(request.order_id).hex()[:24]
        decline = self._decline_reason(request)
        if decline:
            return PaymentResult("failed", reference, decline)
        return PaymentResult("succeeded", reference)

    def _decline_reason(self, request: PaymentRequested) -> str | None:
        if self.mode == "always_succeed":
            return None
        if self.mode == "always_fail":
            return "simulated_decline"
        if self.mode == "rule_based":
            if request.amount_cents > self.max_amount_cents:
                return "amount_over_limit"
            return None
        return None if stable_draw(request.order_id) < self.success_rate else "simulated_random_decline"
