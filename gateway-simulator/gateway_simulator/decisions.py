"""Whether a new charge is approved: `PAYMENT_SIMULATION_MODE`.

Decided from the charge alone, never from the time or a counter, so every charge of one order
gets the same answer (a new key for the same order is declined or approved again):
- `random`: approved when a draw seeded by the order id is below `PAYMENT_SUCCESS_RATE`;
- `rule_based`: declined when the amount is over `PAYMENT_RULE_MAX_AMOUNT_CENTS`;
- `always_succeed`, `always_fail`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SIMULATION_MODES = ("random", "rule_based", "always_succeed", "always_fail")

# Stripe's decline `code` is `card_declined`; the `decline_code` says why.
DECLINED = "card_declined"


def stable_draw(order_id: int) -> float:
    """A number in [0, 1) that depends only on the order."""
    digest = hashlib.sha256(f"payment:{order_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Decider:
    mode: str
    success_rate: float = 0.7
    max_amount_cents: int = 1_000_000

    def __post_init__(self) -> None:
        if self.mode not in SIMULATION_MODES:
            raise ValueError(f"unknown simulation mode {self.mode!r}")

    def decline_code(self, order_id: int, amount_cents: int) -> str | None:
        """None to approve, else why the charge is declined."""
        if self.mode == "always_succeed":
            return None
        if self.mode == "always_fail":
            return "simulated_decline"
        if self.mode == "rule_based":
            return "amount_over_limit" if amount_cents > self.max_amount_cents else None
        return None if stable_draw(order_id) < self.success_rate else "simulated_random_decline"
