"""The domain's problem constructors (codes from docs/conventions.md)."""

from __future__ import annotations

from typing import Any

from servicekit.problems import Problem, conflict, idempotency_key_mismatch, not_found

__all__ = ["idempotency_key_mismatch"]  # shared with the BFF: servicekit.problems


def insufficient_stock(product_id: int, requested: int, available: int) -> Problem:
    return conflict(
        "insufficient_stock",
        f"Product {product_id}: requested {requested}, available {available}",
        product_id=product_id,
        requested=requested,
        available=available,
    )


def invalid_state_transition(order: Any, action: str) -> Problem:
    return conflict(
        "invalid_state_transition",
        f"Cannot {action} order {order.id} in status {order.status}",
        current_status=order.status,
    )


def cancel_window_expired(order: Any, window_seconds: int) -> Problem:
    return conflict(
        "cancel_window_expired",
        f"Order {order.id} was confirmed more than {window_seconds} seconds ago or its payment has settled",
        current_status=order.status,
    )


def payment_in_progress(order: Any) -> Problem:
    return conflict(
        "payment_in_progress",
        f"Order {order.id} is being charged; it can no longer be canceled",
        current_status=order.status,
    )


class CustomerDeleted(Problem):
    """The customer has a tombstone (customers-service reported it deleted).

    Answered exactly like an unknown customer (404 `not_found`, resource `customer`); a distinct
    class so the service layer can drop the customer from its lookup cache on the way out."""

    def __init__(self, customer_id: int) -> None:
        unknown = not_found("customer", customer_id)
        super().__init__(unknown.status, unknown.code, unknown.detail, title=unknown.title, extra=unknown.extra)
        self.customer_id = customer_id


def cart_empty(customer_id: int) -> Problem:
    return conflict("cart_empty", f"The cart of customer {customer_id} is empty")


def duplicate_sku(sku: str) -> Problem:
    return conflict("duplicate_sku", f"A product with SKU {sku!r} already exists", sku=sku)


def idempotency_in_flight() -> Problem:
    return Problem(
        409,
        "idempotency_in_flight",
        "A request with this Idempotency-Key is still being processed; retry shortly",
        headers={"Retry-After": "1"},
    )
