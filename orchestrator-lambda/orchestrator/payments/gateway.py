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

`http_gateway.HttpPaymentGateway` implements it over the provider's HTTP API; locally that API is
the gateway simulator (`gateway-simulator/`, docs/payment-gateway.md).
"""

from __future__ import annotations

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
