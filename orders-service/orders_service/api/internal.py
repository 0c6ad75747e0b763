"""Internal endpoints: service tokens only, each route from the one caller that needs it:
payments claims and settles, the sweeper lists overdue payments and does the maintenance, the
BFF (orchestrator) places orders and keeps its own answers, customers-service reports deletions.
"""

from __future__ import annotations

from flask.views import MethodView

from servicekit.contracts import OrderSchema
from servicekit.web import Blueprint, current_principal, int_path, log_context, requires

from ..config import BFF_CALLER, CUSTOMERS_SERVICE_NAME, PAYMENTS_CALLER, SWEEPER_CALLER
from ..services import customers, orders, payments, reservations, stored_responses
from .common import (
    idempotency_key_parameters,
    outcome_response,
    problem_responses,
    read_idempotency_key,
    service_context,
)
from .orders import CREATE_PROBLEM_DESCRIPTIONS, CREATE_PROBLEM_STATUSES, ORDER_CREATE_SCHEMA
from .schemas import (
    CustomerDeletedResultSchema,
    ExpireReservationsResultSchema,
    ExpireReservationsSchema,
    OverduePaymentPageSchema,
    OverdueQuerySchema,
    PaymentClaimResultSchema,
    PaymentOutcomeResultSchema,
    PaymentOutcomeSchema,
    PurgeResultSchema,
    StoredResponseInSchema,
    StoredResponseSchema,
)

blp = Blueprint(
    "internal",
    __name__,
    description="Service-to-service, each route for the one service that needs it; user tokens get 403",
)


@blp.route("/internal/placements")
class Placements(MethodView):
    @requires("service", callers=(BFF_CALLER,))
    @blp.arguments(ORDER_CREATE_SCHEMA)
    @blp.doc(parameters=idempotency_key_parameters(required=True))
    @blp.alt_response(201, schema=OrderSchema, success=True, description="CONFIRMED, payment PENDING, stock reserved")
    @problem_responses(
        blp,
        *CREATE_PROBLEM_STATUSES,
        **CREATE_PROBLEM_DESCRIPTIONS,
        s400="`idempotency_key_required`, `validation_error`",
        s403="A user token, or a service other than the BFF (orchestrator)",
    )
    def post(self, body):
        """The BFF places an order: create and confirm in one transaction (Idempotency-Key required)

        The body and the errors of `POST /orders`; the order comes back CONFIRMED, payment
        PENDING. The key is create's: a key a plain create used first replays that CREATED order.
        """
        if body.get("customer_id") is not None:  # on the refusals' log lines too
            log_context(customer_id=body["customer_id"])
        key = read_idempotency_key(required=True)
        outcome = orders.place_order(service_context(), current_principal(), body, key)
        log_context(order_id=outcome.body["id"], customer_id=outcome.body["customer_id"])
        return outcome_response(outcome)


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


@blp.route(f"/internal/orders/{int_path('order_id')}/payment-claim")
class PaymentClaim(MethodView):
    @requires("service", callers=(PAYMENTS_CALLER,))
    @blp.response(200, PaymentClaimResultSchema)
    @problem_responses(blp, 401, 403, 404, 409, s409="`invalid_state_transition`: the order is still CREATED")
    def post(self, order_id):
        """Claim an order's payment before charging: CONFIRMED+PENDING (or PROCESSING again) → PROCESSING,
        with the amount and the order's payment attempt id; a settled or canceled order is not claimed"""
        log_context(order_id=order_id)
        result = payments.claim_payment(service_context(), order_id)
        log_context(customer_id=result["order"]["customer_id"])
        return result


@blp.route(f"/internal/orders/{int_path('order_id')}/payment-outcome")
class PaymentOutcome(MethodView):
    @requires("service", callers=(PAYMENTS_CALLER,))
    @blp.arguments(PaymentOutcomeSchema)
    @blp.response(200, PaymentOutcomeResultSchema)
    @problem_responses(
        blp,
        400,
        401,
        403,
        404,
        409,
        s409="`invalid_state_transition` (the order is still CREATED), `payment_attempt_mismatch`",
    )
    def post(self, body, order_id):
        """Record the outcome of the claimed payment attempt; applied once (PROCESSING → PAID, or CANCELED
        with the stock returned)"""
        log_context(order_id=order_id)
        result = payments.record_payment_outcome(
            service_context(),
            order_id,
            body["outcome"],
            payment_attempt_id=body["payment_attempt_id"],
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
        """CONFIRMED orders whose payment is PENDING after older_than_seconds or PROCESSING with no claim
        for processing_older_than_seconds, oldest first"""
        return payments.overdue_payments(
            service_context(),
            older_than_seconds=query["older_than_seconds"],
            processing_older_than_seconds=query["processing_older_than_seconds"],
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


STORED_RESPONSE_PATH = "/internal/stored-responses/<string(minlength=1,maxlength=255):key>"


@blp.route(STORED_RESPONSE_PATH)
class StoredResponse(MethodView):
    @requires("service", callers=(BFF_CALLER,))
    @blp.response(200, StoredResponseSchema)
    @problem_responses(blp, 401, 403, 404)
    def get(self, key):
        """The answer the BFF stored under `key` (its own scope), or 404"""
        return stored_responses.lookup_response(service_context(), current_principal(), key)

    @requires("service", callers=(BFF_CALLER,))
    @blp.arguments(StoredResponseInSchema)
    @blp.response(201, StoredResponseSchema)
    @blp.alt_response(200, schema=StoredResponseSchema, description="Already stored: the first answer")
    @problem_responses(
        blp, 400, 401, 403, 409, 422, s409="`idempotency_in_flight`", s422="Stored with another fingerprint"
    )
    def put(self, body, key):
        """Keep the BFF's final answer under `key`; the first one stored wins"""
        stored, created = stored_responses.store_response(
            service_context(),
            current_principal(),
            key,
            fingerprint=body["fingerprint"],
            status=body["status"],
            body=body["body"],
        )
        return stored, 201 if created else 200
