"""The domain's problem constructors (codes from docs/conventions.md)."""

from __future__ import annotations

from typing import Any

from servicekit.problems import Problem, conflict


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


def idempotency_key_mismatch() -> Problem:
    return Problem(
        422,
        "idempotency_key_mismatch",
        "This Idempotency-Key was already used with a different request",
    )
