"""Orders: stock is reserved at create, returned exactly once at cancel (docs/order-lifecycle.md).

A customer customers-service reported deleted (its tombstone in `deleted_customers`) is refused
inside the create transaction, by a column of the statement that locks the products: the same
404 as an unknown customer, even on a worker whose customer cache still holds it.

Locking discipline (no lock cycles, so deadlocks are rare and retried when they happen):
- create locks the products it reserves, in id order, as late as it can: it reads them without
  a lock, inserts the order and stores its idempotency key with the answer, then sends, in one
  round trip (servicekit.db.send_with_commit), the UPDATE that takes their stock (and locks the
  rows), the lines (whose foreign key to the product needs the row's lock, so they cannot come
  first) and the COMMIT. A row without the stock or at another price than the one read fails the
  CHECK on stock, so nothing is committed; the transaction is run again the pessimistic way (one
  SELECT ... FOR UPDATE first), which answers a 409 if the stock under the lock is short. A hot
  product's row is held for no round trip of ours: only while the server runs the rest of the
  batch and commits;
- checkout locks the customer's cart row first, then the products (the same way);
- every transition of an existing order locks the order row first, then its products in id
  order (a single UPDATE over the primary key).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Row
from sqlalchemy.exc import DBAPIError

from servicekit.auth import Principal
from servicekit.db import transaction
from servicekit.pagination import decode_cursor, page
from servicekit.problems import Problem, forbidden, not_found
from servicekit.timeutil import utcnow
from servicekit.web import scoped_customer_id

from .. import repository as repo
from ..models import CANCELED, CONFIRMED, CREATED, PENDING, PROCESSING
from . import idempotency
from .context import ServiceContext
from .idempotency import IdempotentRequest, LockLast, Outcome
from .problems import (
    CustomerDeleted,
    cancel_window_expired,
    cart_empty,
    insufficient_stock,
    invalid_state_transition,
    payment_in_progress,
)
from .shapes import new_order_view, order_view

CANCEL_REASON_REQUESTED = "requested"
CANCEL_REASON_PAYMENT_FAILED = "payment_failed"
CANCEL_REASON_RESERVATION_EXPIRED = "reservation_expired"

CREATE_ROUTE = "POST /orders"
CONFIRM_ROUTE = "POST /orders/{order_id}/confirm"
CANCEL_ROUTE = "POST /orders/{order_id}/cancel"


# --- Create -----------------------------------------------------------------------------------


def create_order(
    ctx: ServiceContext, principal: Principal, body: dict[str, Any], idempotency_key: str | None
) -> Outcome:
    """Reserve stock for `items` (or the customer's cart) and create the order, all or nothing."""
    return _create(ctx, principal, body, idempotency_key, confirmed=False)


def place_order(ctx: ServiceContext, principal: Principal, body: dict[str, Any], idempotency_key: str) -> Outcome:
    """Create the order CONFIRMED, its payment PENDING: create and confirm in one transaction
    (the BFF's placement, `POST /internal/placements`).

    It shares create's idempotency scope (caller, `POST /orders`, key) and fingerprint: one key
    makes at most one order, whichever of the two it was sent to first. So a key a plain create
    used first replays that create's answer, a CREATED order, which the caller then confirms as
    before (a placement retried across the deploy that introduced this call, docs/idempotency.md)."""
    return _create(ctx, principal, body, idempotency_key, confirmed=True)


def _create(
    ctx: ServiceContext, principal: Principal, body: dict[str, Any], idempotency_key: str | None, *, confirmed: bool
) -> Outcome:
    customer_id = scoped_customer_id(principal, body.get("customer_id"))
    request = IdempotentRequest.for_key(
        idempotency_key, caller=principal.identity, route=CREATE_ROUTE, path_params={}, body=body
    )
    replay = ctx.replays.get(request)
    if replay is not None:
        return replay

    # Outside any transaction: no row lock is ever held across an HTTP call. A replay of a key
    # that completed answers the stored response whatever the customer's state now; a fresh
    # key costs no extra read (the claim in `run_once` finds a completed twin anyway).
    try:
        ctx.customers.ensure_exists(customer_id)
    except Problem:
        replay = idempotency.replay_if_stored(ctx.connect, request, ctx.replays)
        if replay is not None:
            return replay
        raise

    from_cart = bool(body.get("from_cart"))

    def run(lock_first: bool) -> Outcome:
        if from_cart:

            def work(conn: Connection) -> Outcome | LockLast:
                return _checkout_cart(conn, customer_id, confirmed=confirmed, lock_first=lock_first)
        else:
            wanted = {line["product_id"]: line["qty"] for line in body["items"]}

            def work(conn: Connection) -> Outcome | LockLast:
                return _reserve_and_create(conn, customer_id, wanted, confirmed=confirmed, lock_first=lock_first)

        # Items store their key last, with the answer, before the stock is taken (the LockLast
        # step): one statement fewer, and none more under a hot product's lock. Checkout claims
        # its key first (the cart's lock comes right after); its stock is taken last all the same.
        return idempotency.run_once(
            ctx.connect,
            request,
            work,
            ttl_seconds=ctx.settings.idempotency_ttl_seconds,
            cache=ctx.replays,
            claim_last=not from_cart,
        )

    try:
        try:
            return run(lock_first=False)
        except DBAPIError as exc:
            # A product's stock or price changed between create's read and its lock: everything
            # was rolled back, the key too. Create it again, locking first
            # (which tells a 409 for short stock from a changed price).
            if not repo.missed_stock_condition(exc):
                raise
            return run(lock_first=True)
    except CustomerDeleted:
        ctx.customers.forget(customer_id)  # this worker's cache still said "exists"
        raise


def _reserve_and_create(
    conn: Connection, customer_id: int, wanted: dict[int, int], *, confirmed: bool, lock_first: bool = False
) -> Outcome | LockLast:
    """Check, insert the order, take stock, insert its lines (with the COMMIT): four round trips
    whatever the size.

    Read first, lock late (the default): the products are read without a lock, and their rows
    are locked by the UPDATE that takes the stock, sent with the lines and the COMMIT, which all
    fail unless each row still has the stock and the price that was read (so the order's prices
    are those under the lock). That UPDATE and the lines are the `LockLast` step, after the key
    is stored. `lock_first` locks them before anything else instead: the fallback when that
    UPDATE missed a row."""
    if lock_first:
        return Outcome(201, _lock_reserve_and_create(conn, customer_id, wanted, confirmed=confirmed))
    now = utcnow()
    products = repo.read_products(conn, wanted, customer_id=customer_id)
    _check_products(conn, customer_id, wanted, products)
    total_cents = sum(product.price_cents * wanted[product.id] for product in products)
    order_id = repo.insert_order(conn, customer_id=customer_id, total_cents=total_cents, now=now, confirmed=confirmed)
    lines = _order_lines(order_id, wanted, products)

    def take_stock_and_add_lines(conn: Connection) -> None:
        repo.take_stock_with_commit(conn, {p.id: (wanted[p.id], p.price_cents) for p in products}, now)
        repo.insert_order_items(conn, lines)

    return LockLast(
        Outcome(201, new_order_view(order_id, customer_id, total_cents, lines, now, confirmed=confirmed)),
        take_stock_and_add_lines,
    )


def _check_products(conn: Connection, customer_id: int, wanted: dict[int, int], products: list[Row]) -> None:
    """404 for a deleted customer or a missing product, 409 for short stock."""
    # The tombstone rides on every product row; with no row (no product exists) it costs a read,
    # on that error path only, so a deleted customer is a customer 404 like an unknown one.
    if products[0].customer_deleted if products else repo.customer_deleted(conn, customer_id):
        raise CustomerDeleted(customer_id)
    missing = sorted(set(wanted) - {row.id for row in products})
    if missing:
        raise not_found("product", missing[0])
    for product in products:
        if product.stock < wanted[product.id]:
            raise insufficient_stock(product.id, wanted[product.id], product.stock)


def _order_lines(order_id: int, wanted: dict[int, int], products: list[Row]) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order_id,
            "product_id": product.id,
            "sku": product.sku,
            "qty": wanted[product.id],
            "unit_price_cents": product.price_cents,
        }
        for product in products
    ]


def _lock_reserve_and_create(
    conn: Connection, customer_id: int, wanted: dict[int, int], *, confirmed: bool
) -> dict[str, Any]:
    """Lock, check, take stock, insert the order, then its lines with the COMMIT: four round trips
    whatever the size."""
    now = utcnow()
    locked = repo.lock_products(conn, wanted, customer_id=customer_id)
    _check_products(conn, customer_id, wanted, locked)
    repo.change_stock(conn, {product_id: -qty for product_id, qty in wanted.items()}, now)
    total_cents = sum(product.price_cents * wanted[product.id] for product in locked)
    order_id = repo.insert_order(conn, customer_id=customer_id, total_cents=total_cents, now=now, confirmed=confirmed)
    lines = _order_lines(order_id, wanted, locked)
    repo.insert_order_items(conn, lines)
    return new_order_view(order_id, customer_id, total_cents, lines, now, confirmed=confirmed)


def _checkout_cart(
    conn: Connection, customer_id: int, *, confirmed: bool, lock_first: bool = False
) -> Outcome | LockLast:
    """Order what is in the cart and empty it, in the caller's transaction."""
    wanted = repo.cart_quantities(conn, customer_id) if repo.lock_cart(conn, customer_id) else {}
    if not wanted:
        # Nothing to lock, so no tombstone column: read it, on this error path only.
        if repo.customer_deleted(conn, customer_id):
            raise CustomerDeleted(customer_id)
        raise cart_empty(customer_id)
    created = _reserve_and_create(conn, customer_id, wanted, confirmed=confirmed, lock_first=lock_first)
    repo.delete_cart_items(conn, customer_id, wanted)
    return created


# --- Transitions ------------------------------------------------------------------------------


def _lock_order_of(conn: Connection, principal: Principal, order_id: int) -> Row:
    """Lock the order; another customer's order is as invisible as a missing one (404)."""
    order = repo.lock_order(conn, order_id)
    if order is None or not principal.can_act_for(order.customer_id):
        raise not_found("order", order_id)
    return order


def confirm_order(ctx: ServiceContext, principal: Principal, order_id: int, idempotency_key: str) -> Outcome:
    """CREATED → CONFIRMED with payment PENDING; a replay with the same key returns the stored result."""
    request = IdempotentRequest.build(
        caller=principal.identity,
        route=CONFIRM_ROUTE,
        key=idempotency_key,
        path_params={"order_id": order_id},
        body={},
    )
    replay = ctx.replays.get(request)
    if replay is not None:
        return replay

    def lock(conn: Connection, nowait: bool) -> tuple[Row | None, list[Row]]:
        return repo.lock_order_with_items(conn, order_id, nowait=nowait)

    def work(conn: Connection) -> Outcome:
        now = utcnow()
        # A retry of a completed confirm does not queue for the order's lock (`lock_or_replay`).
        order, items = idempotency.lock_or_replay(conn, request, ctx.replays, lock)
        if order is None or not principal.can_act_for(order.customer_id):
            raise not_found("order", order_id)
        if order.status != CREATED:
            raise invalid_state_transition(order, "confirm")
        changes = {"status": CONFIRMED, "payment_status": PENDING, "confirmed_at": now}
        repo.set_order_fields(conn, order_id, now, **changes)
        return Outcome(200, order_view(order, items, **changes, updated_at=now))

    # The order's lock comes first and serialises twins: the key is stored last, with the answer.
    return idempotency.run_once(
        ctx.connect,
        request,
        work,
        ttl_seconds=ctx.settings.idempotency_ttl_seconds,
        cache=ctx.replays,
        claim_last=True,
    )


def cancel_order(
    ctx: ServiceContext, principal: Principal, order_id: int, idempotency_key: str | None = None
) -> Outcome:
    """CREATED any time; CONFIRMED within the cancel window while payment is PENDING (not once
    the payments consumer has claimed it: PROCESSING is a 409 `payment_in_progress`).

    With a key (optional; the BFF always sends one), a retry of a cancel that succeeded replays
    its answer instead of a 409 for the order it already canceled."""
    window = timedelta(seconds=ctx.settings.cancel_window_seconds)
    request = IdempotentRequest.for_key(
        idempotency_key, caller=principal.identity, route=CANCEL_ROUTE, path_params={"order_id": order_id}, body={}
    )

    def work(conn: Connection) -> Outcome:
        now = utcnow()
        order = _lock_order_of(conn, principal, order_id)
        if order.status == CONFIRMED:
            if order.payment_status == PROCESSING:
                raise payment_in_progress(order)
            if order.payment_status != PENDING or now - order.confirmed_at > window:
                raise cancel_window_expired(order, ctx.settings.cancel_window_seconds)
        elif order.status != CREATED:
            raise invalid_state_transition(order, "cancel")
        return Outcome(200, release_reservation(conn, order, CANCEL_REASON_REQUESTED, now))

    return idempotency.run_once(
        ctx.connect, request, work, ttl_seconds=ctx.settings.idempotency_ttl_seconds, cache=ctx.replays
    )


def release_reservation(conn: Connection, order: Row, reason: str, now, **changes: Any) -> dict[str, Any]:
    """Cancel a locked, not yet canceled order and return its stock (exactly once: the status
    check and this change happen under the same order row lock)."""
    assert order.status != CANCELED
    items = repo.items_by_order(conn, [order.id])[order.id]
    repo.change_stock(conn, {item.product_id: item.qty for item in items}, now)
    changes = {"status": CANCELED, "canceled_at": now, "cancel_reason": reason, **changes}
    repo.set_order_fields(conn, order.id, now, **changes)
    return order_view(order, items, **changes, updated_at=now)


# --- Reads ------------------------------------------------------------------------------------


def get_order(ctx: ServiceContext, principal: Principal, order_id: int) -> dict[str, Any]:
    def work(conn: Connection) -> dict[str, Any]:
        order = repo.get_order(conn, order_id)
        if order is None or not principal.can_act_for(order.customer_id):
            raise not_found("order", order_id)
        return order_view(order, repo.items_by_order(conn, [order_id])[order_id])

    return transaction(ctx.connect, work)


def list_orders(ctx: ServiceContext, principal: Principal, query: dict[str, Any]) -> dict[str, Any]:
    """Newest first; customer users only ever see their own orders."""
    customer_id = query.get("customer_id")
    if not principal.is_privileged:
        if customer_id is not None and customer_id != principal.customer_id:
            raise forbidden("A customer user may only list its own orders")
        customer_id = principal.customer_id
    where = repo.OrderFilter(
        customer_id=customer_id,
        status=query.get("status"),
        created_from=query.get("created_from"),
        created_to=query.get("created_to"),
    )
    limit = query["limit"]
    before_id = decode_cursor(query["cursor"])["id"] if query.get("cursor") else None

    def work(conn: Connection) -> dict[str, Any]:
        rows = repo.list_orders(conn, where, before_id=before_id, limit=limit + 1)
        shown = rows[:limit]
        items = repo.items_by_order(conn, [row.id for row in shown])
        next_position = {"id": shown[-1].id} if len(rows) > limit else None
        return page([order_view(row, items[row.id]) for row in shown], limit=limit, next_position=next_position)

    return transaction(ctx.connect, work)
