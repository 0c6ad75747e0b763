"""Carts: one open cart per customer.

Every change to a cart, and checkout, first locks the customer's `carts` row, so the
100-item limit holds under concurrency and checkout empties exactly what it ordered.
"""

from __future__ import annotations

from typing import Any

from servicekit.auth import Principal
from servicekit.db import transaction
from servicekit.problems import not_found, validation_error
from servicekit.timeutil import utcnow

from .. import repository as repo
from .context import ServiceContext
from .problems import CustomerDeleted
from .shapes import cart_view

MAX_CART_ITEMS = 100  # distinct products, the same limit as an order


def cart_owner(principal: Principal, requested_customer_id: int | None) -> int:
    """The customer whose cart this is: admins and services name it; customers use their own.

    Another customer's cart is a 404 for a customer user (it is a resource they cannot see).
    """
    if principal.is_privileged:
        if requested_customer_id is None:
            raise validation_error({"customer_id": ["customer_id is required for admin and service callers."]})
        return requested_customer_id
    if requested_customer_id is not None and requested_customer_id != principal.customer_id:
        raise not_found("cart")
    assert principal.customer_id is not None
    return principal.customer_id


def get_cart(ctx: ServiceContext, principal: Principal, requested_customer_id: int | None) -> dict[str, Any]:
    customer_id = cart_owner(principal, requested_customer_id)
    return transaction(ctx.connect, lambda conn: cart_view(customer_id, repo.cart_lines(conn, customer_id)))


def put_cart_item(
    ctx: ServiceContext, principal: Principal, requested_customer_id: int | None, product_id: int, qty: int
) -> dict[str, Any]:
    """Set the quantity of one product in the cart (adds it if absent).

    A deleted customer (tombstone) gets the unknown customer's 404, like at checkout: its cart
    can no longer grow. Reading it and removing items stay allowed (they can lead to no order)."""
    customer_id = cart_owner(principal, requested_customer_id)
    ctx.customers.ensure_exists(customer_id)

    def work(conn):
        now = utcnow()
        product_found, customer_deleted = repo.product_exists_and_customer_deleted(conn, product_id, customer_id)
        if customer_deleted:
            raise CustomerDeleted(customer_id)
        if not product_found:
            raise not_found("product", product_id)
        repo.lock_or_create_cart(conn, customer_id, now)
        in_cart = repo.cart_product_ids(conn, customer_id)
        if product_id not in in_cart and len(in_cart) >= MAX_CART_ITEMS:
            raise validation_error({"product_id": [f"A cart holds at most {MAX_CART_ITEMS} distinct products."]})
        repo.put_cart_item(conn, customer_id, product_id, qty, now)
        return cart_view(customer_id, repo.cart_lines(conn, customer_id))

    try:
        return transaction(ctx.connect, work)
    except CustomerDeleted:
        ctx.customers.forget(customer_id)
        raise


def remove_cart_item(
    ctx: ServiceContext, principal: Principal, requested_customer_id: int | None, product_id: int
) -> dict[str, Any]:
    """Remove one product from the cart; removing one that is not there is not an error."""
    customer_id = cart_owner(principal, requested_customer_id)

    def work(conn):
        if not repo.product_exists(conn, product_id):
            raise not_found("product", product_id)
        if repo.lock_cart(conn, customer_id):
            repo.delete_cart_items(conn, customer_id, [product_id])
        return cart_view(customer_id, repo.cart_lines(conn, customer_id))

    return transaction(ctx.connect, work)
