"""Payments, as orders-service sees them (docs/payments.md): the claim, the outcome, the overdue list.

Each order is charged at most once, whatever is delivered how often:
1. Claim: under the order's row lock, CONFIRMED + PENDING (or PROCESSING again, after a crash or
   timeout) becomes PROCESSING, and the answer carries the amount from our own rows and the
   order's payment attempt id, made at the first claim and never changed. The payments Lambda
   charges with that id as the gateway's idempotency key, so every retry is the same charge.
   An order that is settled or canceled is not claimed: nothing may be charged for it.
2. Outcome: applied once, only to the PROCESSING order of that attempt (PAID, or CANCELED with
   the stock returned); a repeat answers what happened, `applied: false`.
While PROCESSING the order cannot be canceled (409 `payment_in_progress`): the charge may already
have gone through, so the only safe end is the gateway's answer.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row

from servicekit.db import transaction
from servicekit.logging import log_event
from servicekit.pagination import decode_cursor, page
from servicekit.problems import conflict, not_found
from servicekit.timeutil import utcnow

from .. import repository as repo
from ..models import CANCELED, CONFIRMED, CREATED, FAILED, PAID, PENDING, PROCESSING, SUCCEEDED
from .context import ServiceContext
from .orders import CANCEL_REASON_PAYMENT_FAILED, release_reservation
from .problems import invalid_state_transition
from .shapes import order_view, overdue_payment_view

log = logging.getLogger(__name__)

OUTCOME_SUCCEEDED = "succeeded"
OUTCOME_FAILED = "failed"
NOT_APPLIED_ALREADY_SETTLED = "already_settled"
NOT_APPLIED_ORDER_CANCELED = "order_canceled"
CURRENCY = "usd"

_EPOCH = datetime(1970, 1, 1)


def new_payment_attempt_id() -> str:
    return "pay_" + uuid.uuid4().hex


def _not_payable_reason(order: Row) -> str:
    """Why an order that is neither CREATED nor awaiting payment takes no payment."""
    settled = order.status == PAID or order.payment_status in (SUCCEEDED, FAILED)
    return NOT_APPLIED_ALREADY_SETTLED if settled else NOT_APPLIED_ORDER_CANCELED


def _lock_payable_order(conn: Connection, order_id: int, action: str) -> Row:
    order = repo.lock_order(conn, order_id)
    if order is None:
        raise not_found("order", order_id)
    if order.status == CREATED:
        raise invalid_state_transition(order, action)
    return order


def claim_payment(ctx: ServiceContext, order_id: int) -> dict[str, Any]:
    """→ `{"claimed": true, "payment": {...}, "order"}` or `{"claimed": false, "reason", "order"}`."""

    def work(conn: Connection) -> dict[str, Any]:
        now = utcnow()
        order, items = repo.lock_order_with_items(conn, order_id)
        if order is None:
            raise not_found("order", order_id)
        if order.status == CREATED:
            raise invalid_state_transition(order, "claim the payment of")
        if order.status != CONFIRMED or order.payment_status not in (PENDING, PROCESSING):
            view = order_view(order, items)
            return {"claimed": False, "reason": _not_payable_reason(order), "payment": None, "order": view}
        attempt_id = order.payment_attempt_id or new_payment_attempt_id()
        changes = {"payment_status": PROCESSING, "payment_attempt_id": attempt_id, "payment_claimed_at": now}
        repo.set_order_fields(conn, order_id, now, **changes)
        if order.payment_status == PROCESSING:
            log_event(log, "payment_reclaimed", logging.INFO, order_id=order_id, payment_attempt_id=attempt_id)
        return {
            "claimed": True,
            "reason": None,
            "payment": {
                "attempt_id": attempt_id,
                "order_id": order_id,
                "customer_id": order.customer_id,
                "amount_cents": order.total_cents,
                "currency": CURRENCY,
            },
            "order": order_view(order, items, **changes, updated_at=now),
        }

    return transaction(ctx.connect, work)


def payment_attempt_mismatch(order: Row, attempt_id: str) -> Exception:
    return conflict(
        "payment_attempt_mismatch",
        f"Order {order.id} has no payment attempt {attempt_id}",
        current_status=order.status,
    )


def record_payment_outcome(
    ctx: ServiceContext,
    order_id: int,
    outcome: str,
    *,
    payment_attempt_id: str,
    payment_reference: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """→ `{"applied", "reason", "order"}`; the claimed (PROCESSING) order becomes PAID, or
    CANCELED with its stock returned."""

    def work(conn: Connection) -> dict[str, Any]:
        now = utcnow()
        order = _lock_payable_order(conn, order_id, "record a payment outcome for")
        if order.payment_attempt_id != payment_attempt_id:
            raise payment_attempt_mismatch(order, payment_attempt_id)
        if order.status == CONFIRMED and order.payment_status == PROCESSING:
            if outcome == OUTCOME_SUCCEEDED:
                changes = {
                    "status": PAID,
                    "payment_status": SUCCEEDED,
                    "paid_at": now,
                    "payment_reference": payment_reference,
                }
                repo.set_order_fields(conn, order_id, now, **changes)
                items = repo.items_by_order(conn, [order_id])[order_id]
                view = order_view(order, items, **changes, updated_at=now)
            else:
                view = release_reservation(
                    conn,
                    order,
                    CANCEL_REASON_PAYMENT_FAILED,
                    now,
                    payment_status=FAILED,
                    payment_reference=payment_reference,
                    payment_failure_reason=reason,
                )
            return {"applied": True, "reason": None, "order": view}

        not_applied = _not_payable_reason(order)
        if order.status == CANCELED and not_applied == NOT_APPLIED_ORDER_CANCELED and outcome == OUTCOME_SUCCEEDED:
            # Cannot happen while claims guard every charge; if it does, money was taken for a
            # canceled order and someone must refund it: loud, with what they need.
            log_event(
                log,
                "payment_succeeded_after_cancel",
                logging.ERROR,
                order_id=order_id,
                payment_attempt_id=payment_attempt_id,
                payment_reference=payment_reference,
            )
        items = repo.items_by_order(conn, [order_id])[order_id]
        return {"applied": False, "reason": not_applied, "order": order_view(order, items)}

    return transaction(ctx.connect, work)


def _cursor_position(confirmed_at: datetime, order_id: int) -> dict[str, int]:
    return {"t": (confirmed_at - _EPOCH) // timedelta(microseconds=1), "id": order_id}


def overdue_payments(
    ctx: ServiceContext,
    *,
    older_than_seconds: int | None,
    processing_older_than_seconds: int | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """CONFIRMED orders whose payment is PENDING after the grace period, or PROCESSING with no
    claim for the processing grace period, oldest confirmation first."""
    settings = ctx.settings
    older_than = settings.payment_grace_seconds if older_than_seconds is None else older_than_seconds
    if processing_older_than_seconds is None:
        processing_older_than_seconds = settings.payment_processing_grace_seconds
    now = utcnow()
    after = None
    if cursor:
        position = decode_cursor(cursor, int_fields=("t", "id"))
        after = (_EPOCH + timedelta(microseconds=position["t"]), position["id"])

    def work(conn: Connection) -> dict[str, Any]:
        rows = repo.overdue_payments(
            conn,
            confirmed_before=now - timedelta(seconds=older_than),
            claimed_before=now - timedelta(seconds=processing_older_than_seconds),
            after=after,
            limit=limit + 1,
        )
        shown = rows[:limit]
        next_position = _cursor_position(shown[-1].confirmed_at, shown[-1].id) if len(rows) > limit else None
        return page([overdue_payment_view(row) for row in shown], limit=limit, next_position=next_position)

    return transaction(ctx.connect, work)
