"""Request and response schemas (marshmallow), with the limits of servicekit.limits.

The request schemas the BFF documents too (products, cart, order lines, the order list query)
are the platform's single definitions in `servicekit.contracts`; the rest are this service's own.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from servicekit.contracts import (
    CartItemPutSchema,
    CustomerQuerySchema,
    OrderLineInSchema,
    OrderListQuerySchema,
    OrderSchema,
    PageQuerySchema,
    ProductCreateSchema,
    ProductSchema,
    ProductUpdateSchema,
    RestockSchema,
    strict_int,
    text_field,
)
from servicekit.limits import BIGINT_MAX, INITIAL_STOCK_MAX, ITEMS_PER_ORDER_MAX, QTY_MAX
from servicekit.web import page_schema, request_principal

from ..services.payments import OUTCOME_FAILED, OUTCOME_SUCCEEDED

__all__ = [
    "CartItemPutSchema",
    "CustomerQuerySchema",
    "OrderListQuerySchema",
    "ProductCreateSchema",
    "ProductUpdateSchema",
    "RestockSchema",
]

MAX_INITIAL_STOCK = INITIAL_STOCK_MAX
MAX_QTY = QTY_MAX
MAX_ORDER_ITEMS = ITEMS_PER_ORDER_MAX
MAX_AGE_SECONDS = 10**8  # ~3 years: older_than_seconds beyond this is a typo

ProductPageSchema = page_schema(ProductSchema, "ProductPage")


class StrictBoolean(ma.fields.Boolean):
    """JSON true or false only (marshmallow's truthy sets match 1 and 0 too: 1 == True)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


# --- Orders -----------------------------------------------------------------------------------


class OrderCreateSchema(ma.Schema):
    """Items, or `from_cart: true` (not both). Each product once: a rule the document states in prose."""

    # The items-or-cart rule, as the document states it.
    OPENAPI_EXTRA = {
        "anyOf": [
            {"required": ["items"], "not": {"required": ["from_cart"], "properties": {"from_cart": {"enum": [True]}}}},
            {"required": ["from_cart"], "properties": {"from_cart": {"enum": [True]}}, "not": {"required": ["items"]}},
        ]
    }

    customer_id = strict_int(
        1,
        BIGINT_MAX,
        load_default=None,
        allow_none=True,
        metadata={"description": "Required for admins and services; a customer user may only name its own"},
    )
    items = ma.fields.List(
        ma.fields.Nested(OrderLineInSchema),
        validate=validate.Length(min=1, max=MAX_ORDER_ITEMS),
        metadata={"description": "Each product at most once"},
    )
    from_cart = StrictBoolean(metadata={"description": "Order the cart's contents and empty it"})

    @ma.validates_schema
    def _items_or_cart(self, data, **kwargs):
        has_items = "items" in data
        if data.get("from_cart") and has_items:
            raise ma.ValidationError("Give either items or from_cart: true, not both.", field_name="items")
        if not data.get("from_cart") and not has_items:
            raise ma.ValidationError("Missing data for required field (or set from_cart: true).", field_name="items")
        seen: set[int] = set()
        for line in data.get("items", ()):
            if line["product_id"] in seen:
                raise ma.ValidationError(
                    f"Duplicate product_id {line['product_id']}: list each product once.", field_name="items"
                )
            seen.add(line["product_id"])

    @ma.validates_schema(skip_on_field_errors=False)
    def _customer_named(self, data, **kwargs):
        """Listed with every other error: an admin or service must name the customer."""
        principal = request_principal()
        if principal is not None and principal.is_privileged and data.get("customer_id") is None:
            raise ma.ValidationError("customer_id is required for admin and service callers.", field_name="customer_id")


OrderPageSchema = page_schema(OrderSchema, "OrderPage")


# --- Internal ---------------------------------------------------------------------------------


PAYMENT_ATTEMPT_ID_MAX = 64


class PaymentClaimDetailsSchema(ma.Schema):
    attempt_id = ma.fields.String(
        metadata={"description": "The gateway idempotency key of this order's payment; the same on every claim"}
    )
    order_id = ma.fields.Integer()
    customer_id = ma.fields.Integer()
    amount_cents = ma.fields.Integer(metadata={"description": "From the order's own rows"})
    currency = ma.fields.String()


class PaymentClaimResultSchema(ma.Schema):
    claimed = ma.fields.Boolean(metadata={"description": "False: settled or canceled, charge nothing"})
    reason = ma.fields.String(allow_none=True, metadata={"description": "already_settled or order_canceled"})
    payment = ma.fields.Nested(PaymentClaimDetailsSchema, allow_none=True)
    order = ma.fields.Nested(OrderSchema)


class PaymentOutcomeSchema(ma.Schema):
    outcome = ma.fields.String(required=True, validate=validate.OneOf((OUTCOME_SUCCEEDED, OUTCOME_FAILED)))
    payment_attempt_id = text_field(PAYMENT_ATTEMPT_ID_MAX, required=True)
    payment_reference = text_field(128, load_default=None)
    reason = text_field(200, load_default=None)


class PaymentOutcomeResultSchema(ma.Schema):
    applied = ma.fields.Boolean()
    reason = ma.fields.String(allow_none=True, metadata={"description": "already_settled or order_canceled"})
    order = ma.fields.Nested(OrderSchema)


class OverdueQuerySchema(PageQuerySchema):
    older_than_seconds = ma.fields.Integer(
        validate=validate.Range(min=0, max=MAX_AGE_SECONDS),
        metadata={"description": "PENDING orders confirmed this long ago; default PAYMENT_GRACE_SECONDS"},
    )
    processing_older_than_seconds = ma.fields.Integer(
        validate=validate.Range(min=0, max=MAX_AGE_SECONDS),
        metadata={
            "description": "PROCESSING orders last claimed this long ago; default PAYMENT_PROCESSING_GRACE_SECONDS"
        },
    )


class OverduePaymentSchema(ma.Schema):
    order_id = ma.fields.Integer()
    customer_id = ma.fields.Integer()
    amount_cents = ma.fields.Integer()
    payment_status = ma.fields.String(metadata={"enum": ["PENDING", "PROCESSING"]})
    confirmed_at = ma.fields.String(metadata={"format": "date-time"})


OverduePaymentPageSchema = page_schema(OverduePaymentSchema, "OverduePaymentPage")


class ExpireReservationsSchema(ma.Schema):
    older_than_seconds = strict_int(
        0, MAX_AGE_SECONDS, load_default=None, metadata={"description": "Default RESERVATION_TTL_SECONDS"}
    )
    limit = strict_int(1, 1000, load_default=100)


class ExpireReservationsResultSchema(ma.Schema):
    expired_order_ids = ma.fields.List(ma.fields.Integer())
    count = ma.fields.Integer()


class PurgeResultSchema(ma.Schema):
    purged = ma.fields.Integer()


class CustomerDeletedResultSchema(ma.Schema):
    customer_id = ma.fields.Integer()
    deleted_at = ma.fields.String(metadata={"description": "When the first report of the deletion was recorded"})


STORED_RESPONSE_BODY_MAX = 512 * 1024


class StoredResponseInSchema(ma.Schema):
    fingerprint = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "The caller's digest of its request: the same key with another one is a 422"},
    )
    status = strict_int(200, 299, required=True)
    body = ma.fields.Raw(required=True, metadata={"description": "Any JSON value, stored as sent"})


class StoredResponseSchema(ma.Schema):
    key = ma.fields.String()
    fingerprint = ma.fields.String()
    status = ma.fields.Integer()
    body = ma.fields.Raw()
    replayed = ma.fields.Boolean(metadata={"description": "True when this is an answer stored earlier"})
    expires_at = ma.fields.String(metadata={"format": "date-time"})
