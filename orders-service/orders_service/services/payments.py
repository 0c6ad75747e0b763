"""Payment outcomes from the payments Lambda, and the sweeper's list of overdue payments.

Payment events may be delivered more than once; an outcome is applied only to an order that
is CONFIRMED with payment PENDING, under the order's row lock, so it takes effect once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from servicekit.db import transaction
from servicekit.logging import log_event
from servicekit.pagination import decode_cursor, page
from servicekit.problems import not_found
from servicekit.timeutil import utcnow

from .. import repository as repo
from ..models import CANCELED, CONFIRMED, CREATED, FAILED, PAID, PENDING, SUCCEEDED
from .context import ServiceContext
from .orders import CANCEL_REASON_PAYMENT_FAILED, release_reservation
from .problems import invalid_state_transition
from .shapes import order_view, overdue_payment_view

log = logging.getLogger(__name__)

OUTCOME_SUCCEEDED = "succeeded"
OUTCOME_FAILED = "failed"
NOT_APPLIED_ALREADY_SETTLED = "already_settled"
NOT_APPLIED_ORDER_CANCELED = "order_canceled"

_EPOCH = datetime(1970, 1, 1)


def record_payment_outcome(
    ctx: ServiceContext,
    order_id: int,
    outcome: str,
    *,
    payment_reference: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """→ `{"applied", "reason", "order"}`; CONFIRMED+PENDING becomes PAID or CANCELED (stock returned)."""

    def work(session: Session) -> dict[str, Any]:
        now = utcnow()
        order = repo.lock_order(session, order_id)
        if order is None:
            raise not_found("order", order_id)
        if order.status == CREATED:
            raise invalid_state_transition(order, "record a payment outcome for")
        if order.status == CONFIRMED and order.payment_status == PENDING:
            if outcome == OUTCOME_SUCCEEDED:
                changes = {
                    "status": PAID,
                    "payment_status": SUCCEEDED,
                    "paid_at": now,
                    "payment_reference": payment_reference,
                }
                repo.set_order_fields(session, order_id, now, **changes)
                items = repo.items_by_order(session, [order_id])[order_id]
                view = order_view(order, items, **changes, updated_at=now)
            else:
                view = release_reservation(
                    session,
                    order,
                    CANCEL_REASON_PAYMENT_FAILED,
                    now,
                    payment_status=FAILED,
                    payment_reference=payment_reference,
                    payment_failure_reason=reason,
                )
            return {"applied": True, "reason": None, "order": view}

        settled = order.status == PAID or order.payment_status == FAILED
        not_applied = NOT_APPLIED_ALREADY_SETTLED if settled else NOT_APPLIED_ORDER_CANCELED
        if order.status == CANCELED and not settled and outcome == OUTCOME_SUCCEEDED:
            # Money taken for an order canceled within its window: someone must refund it.
            log_event(
                log,
                "payment_succeeded_after_cancel",
                logging.WARNING,
                order_id=order_id,
                payment_reference=payment_reference,
            )
        items = repo.items_by_order(session, [order_id])[order_id]
        return {"applied": False, "reason": not_applied, "order": order_view(order, items)}

    return transaction(ctx.session_factory, work)


def _cursor_position(confirmed_at: datetime, order_id: int) -> dict[str, int]:
    return {"t": (confirmed_at - _EPOCH) // timedelta(microseconds=1), "id": order_id}


def overdue_payments(
    ctx: ServiceContext, *, older_than_seconds: int | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    """CONFIRMED orders whose payment is still PENDING after the grace period, oldest first."""
    older_than = ctx.settings.payment_grace_seconds if older_than_seconds is None else older_than_seconds
    confirmed_before = utcnow() - timedelta(seconds=older_than)
    after = None
    if cursor:
        position = decode_cursor(cursor, int_fields=("t", "id"))
        after = (_EPOCH + timedelta(microseconds=position["t"]), position["id"])

    def work(session: Session) -> dict[str, Any]:
        rows = repo.overdue_payments(session, confirmed_before=confirmed_before, after=after, limit=limit + 1)
        shown = rows[:limit]
        next_position = _cursor_position(shown[-1].confirmed_at, shown[-1].id) if len(rows) > limit else None
        return page([overdue_payment_view(row) for row in shown], limit=limit, next_position=next_position)

    return transaction(ctx.session_factory, work)
