"""Orders: create (items or cart checkout), confirm, cancel, read.

The hot paths return the service's dicts directly (documented with `alt_response`); the
service layer already built exactly the documented shape.
"""

from __future__ import annotations

from flask.views import MethodView

from servicekit.contracts import OrderSchema
from servicekit.web import Blueprint, current_principal, int_path, log_context, requires

from ..config import BFF_CALLER
from ..services import orders
from .common import (
    idempotency_key_parameters,
    outcome_response,
    problem_responses,
    read_idempotency_key,
    service_context,
)
from .schemas import OrderCreateSchema, OrderListQuerySchema, OrderPageSchema

blp = Blueprint("orders", __name__, description="Orders and their lifecycle (docs/order-lifecycle.md)")

ORDER_PATH = f"/orders/{int_path('order_id')}"
# An instance, not the class: given a class, webargs builds a new schema for every request.
ORDER_CREATE_SCHEMA = OrderCreateSchema()
# What creating an order answers besides its 201; a placement (api/internal.py) answers the same.
CREATE_PROBLEM_STATUSES = (400, 401, 403, 404, 409, 422, 503)
CREATE_PROBLEM_DESCRIPTIONS = {
    "s404": "Unknown customer or product",
    "s409": "`insufficient_stock` (with product_id, requested, available), `cart_empty`, `idempotency_in_flight`",
    "s503": "customers-service is unavailable",
}


@blp.route("/orders")
class Orders(MethodView):
    @requires("admin", "customer", "service", callers=(BFF_CALLER,))
    @blp.arguments(OrderListQuerySchema, location="query")
    @blp.alt_response(200, schema=OrderPageSchema, success=True, description="Newest first")
    @problem_responses(blp, 400, 401, 403)
    def get(self, query):
        """List orders (customer users: their own)"""
        return orders.list_orders(service_context(), current_principal(), query)

    @requires("admin", "customer", "service", callers=(BFF_CALLER,))
    @blp.arguments(ORDER_CREATE_SCHEMA)
    @blp.doc(parameters=idempotency_key_parameters(required=False))
    @blp.alt_response(201, schema=OrderSchema, success=True, description="Created, stock reserved")
    @problem_responses(blp, *CREATE_PROBLEM_STATUSES, **CREATE_PROBLEM_DESCRIPTIONS)
    def post(self, body):
        """Create an order from items or from the cart; reserves stock, all or nothing"""
        if body.get("customer_id") is not None:
            log_context(customer_id=body["customer_id"])
        key = read_idempotency_key(required=False)
        outcome = orders.create_order(service_context(), current_principal(), body, key)
        log_context(order_id=outcome.body["id"], customer_id=outcome.body["customer_id"])
        return outcome_response(outcome)


@blp.route(ORDER_PATH)
class OrderById(MethodView):
    @requires("admin", "customer", "service", callers=(BFF_CALLER,))
    @blp.alt_response(200, schema=OrderSchema, success=True)
    @problem_responses(blp, 401, 404)
    def get(self, order_id):
        """Get one order"""
        log_context(order_id=order_id)
        order = orders.get_order(service_context(), current_principal(), order_id)
        log_context(customer_id=order["customer_id"])
        return order


@blp.route(f"{ORDER_PATH}/confirm")
class OrderConfirm(MethodView):
    @requires("admin", "customer", "service", callers=(BFF_CALLER,))
    @blp.doc(parameters=idempotency_key_parameters(required=True))
    @blp.alt_response(200, schema=OrderSchema, success=True, description="CONFIRMED, payment PENDING")
    @problem_responses(
        blp,
        400,
        401,
        404,
        409,
        422,
        s400="`idempotency_key_required`",
        s409="`invalid_state_transition` (with current_status), `idempotency_in_flight`",
    )
    def post(self, order_id):
        """Confirm a CREATED order (Idempotency-Key required)"""
        log_context(order_id=order_id)
        key = read_idempotency_key(required=True)
        outcome = orders.confirm_order(service_context(), current_principal(), order_id, key)
        log_context(customer_id=outcome.body["customer_id"])
        return outcome_response(outcome)


@blp.route(f"{ORDER_PATH}/cancel")
class OrderCancel(MethodView):
    @requires("admin", "customer", "service", callers=(BFF_CALLER,))
    @blp.doc(parameters=idempotency_key_parameters(required=False))
    @blp.alt_response(200, schema=OrderSchema, success=True, description="CANCELED, stock returned")
    @problem_responses(
        blp,
        400,
        401,
        404,
        409,
        422,
        s409="`invalid_state_transition` (PAID, CANCELED), `cancel_window_expired`, `idempotency_in_flight`",
    )
    def post(self, order_id):
        """Cancel: CREATED any time, CONFIRMED within CANCEL_WINDOW_SECONDS while payment is PENDING"""
        log_context(order_id=order_id)
        key = read_idempotency_key(required=False)
        outcome = orders.cancel_order(service_context(), current_principal(), order_id, key)
        log_context(customer_id=outcome.body["customer_id"])
        return outcome_response(outcome)
