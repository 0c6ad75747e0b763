"""Internal endpoints: service tokens only.

The orchestrator, payments and sweeper (TRUSTED_CALLERS) may call every one but the deletion
report, which takes customers-service's token and no other (it may call nothing else here).
"""

from __future__ import annotations

from flask.views import MethodView

from servicekit.web import Blueprint, int_path, log_context, requires

from ..config import CUSTOMERS_SERVICE_NAME, PAYMENTS_CALLER, SWEEPER_CALLER
from ..services import customers, payments, reservations
from .common import problem_responses, service_context
from .schemas import (
    CustomerDeletedResultSchema,
    ExpireReservationsResultSchema,
    ExpireReservationsSchema,
    OverduePaymentPageSchema,
    OverdueQuerySchema,
    PaymentOutcomeResultSchema,
    PaymentOutcomeSchema,
    PurgeResultSchema,
)

blp = Blueprint(
    "internal",
    __name__,
    description="Service-to-service (orchestrator, payments, sweeper; customers-service for deletions only); "
    "user tokens get 403",
)


@blp.route(f"/internal/customers/{int_path('customer_id')}/deleted")
class CustomerDeleted(MethodView):
    @requires("service", callers=(CUSTOMERS_SERVICE_NAME,))
    @blp.response(200, CustomerDeletedResultSchema)
    @problem_responses(blp, 401, 403, s403="A user token, or a service other than customers-service")
    def post(self, customer_id):
        """customers-service reports a soft-deleted customer: no new orders or cart items for it from now on
        (idempotent; a repeat keeps the first deleted_at)"""
        log_context(customer_id=customer_id)
        return customers.record_deletion(service_context(), customer_id)


@blp.route(f"/internal/orders/{int_path('order_id')}/payment-outcome")
class PaymentOutcome(MethodView):
    @requires("service", callers=(PAYMENTS_CALLER,))
    @blp.arguments(PaymentOutcomeSchema)
    @blp.response(200, PaymentOutcomeResultSchema)
    @problem_responses(blp, 400, 401, 403, 404, 409, s409="`invalid_state_transition`: the order is still CREATED")
    def post(self, body, order_id):
        """Record a payment outcome; applied once (CONFIRMED+PENDING → PAID or CANCELED)"""
        log_context(order_id=order_id)
        result = payments.record_payment_outcome(
            service_context(),
            order_id,
            body["outcome"],
            payment_reference=body["payment_reference"],
            reason=body["reason"],
        )
        log_context(customer_id=result["order"]["customer_id"])
        return result


@blp.route("/internal/payments/overdue")
class OverduePayments(MethodView):
    @requires("service", callers=(SWEEPER_CALLER,))
    @blp.arguments(OverdueQuerySchema, location="query")
    @blp.response(200, OverduePaymentPageSchema)
    @problem_responses(blp, 400, 401, 403)
    def get(self, query):
        """CONFIRMED orders whose payment is still PENDING after older_than_seconds, oldest first"""
        return payments.overdue_payments(
            service_context(),
            older_than_seconds=query["older_than_seconds"],
            limit=query["limit"],
            cursor=query["cursor"],
        )


@blp.route("/internal/reservations/expire")
class ExpireReservations(MethodView):
    @requires("service", callers=(SWEEPER_CALLER,))
    @blp.arguments(ExpireReservationsSchema, required=False)
    @blp.response(200, ExpireReservationsResultSchema)
    @problem_responses(blp, 400, 401, 403)
    def post(self, body):
        """Cancel orders still CREATED after older_than_seconds (reason reservation_expired)"""
        return reservations.expire_reservations(
            service_context(), older_than_seconds=body["older_than_seconds"], limit=body["limit"]
        )


@blp.route("/internal/idempotency-keys/purge")
class PurgeIdempotencyKeys(MethodView):
    @requires("service", callers=(SWEEPER_CALLER,))
    @blp.response(200, PurgeResultSchema)
    @problem_responses(blp, 401, 403)
    def post(self):
        """Delete idempotency keys past their expiry"""
        return reservations.purge_idempotency_keys(service_context())
