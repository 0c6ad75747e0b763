"""Request and response schemas (marshmallow), with the limits of SPEC §2."""

from __future__ import annotations

import unicodedata

import marshmallow as ma
from marshmallow import validate

from servicekit.contracts import OrderSchema, ProductSchema
from servicekit.limits import BIGINT_MAX, ITEMS_PER_ORDER_MAX, NAME_MAX, PRICE_CENTS_MAX, QTY_MAX, SKU_MAX
from servicekit.timeutil import parse_iso_utc
from servicekit.web import PageQuerySchema, page_schema

from ..models import ORDER_STATUSES
from ..services.payments import OUTCOME_FAILED, OUTCOME_SUCCEEDED
from ..services.products import MAX_RESTOCK_QTY

MAX_SKU = SKU_MAX
MAX_NAME = NAME_MAX
MAX_PRICE_CENTS = PRICE_CENTS_MAX
MAX_INITIAL_STOCK = 10**9
MAX_QTY = QTY_MAX
MAX_ORDER_ITEMS = ITEMS_PER_ORDER_MAX
MAX_AGE_SECONDS = 10**8  # ~3 years: older_than_seconds beyond this is a typo


def _visible_text(value: str) -> None:
    if not value.strip():
        raise ma.ValidationError("Must not be blank.")
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ma.ValidationError("Must not contain control characters.")


def text_field(max_length: int, **kwargs) -> ma.fields.String:
    return ma.fields.String(validate=[validate.Length(min=1, max=max_length), _visible_text], **kwargs)


def strict_int(minimum: int, maximum: int, **kwargs) -> ma.fields.Integer:
    """A JSON integer (no strings, floats or booleans) within [minimum, maximum]."""
    return ma.fields.Integer(strict=True, validate=validate.Range(min=minimum, max=maximum), **kwargs)


def id_field(**kwargs) -> ma.fields.Integer:
    return ma.fields.Integer(validate=validate.Range(min=1, max=BIGINT_MAX), **kwargs)


class UtcDateTime(ma.fields.DateTime):
    """ISO 8601 with `Z`, an offset, or none (taken as UTC) → naive UTC."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or len(value) > 64:
            raise ma.ValidationError("Not a valid ISO 8601 datetime.")
        try:
            return parse_iso_utc(value)
        except (ValueError, OverflowError):
            raise ma.ValidationError("Not a valid ISO 8601 datetime.") from None


# --- Products ---------------------------------------------------------------------------------


class ProductCreateSchema(ma.Schema):
    sku = text_field(MAX_SKU, required=True)
    name = text_field(MAX_NAME, required=True)
    price_cents = strict_int(1, MAX_PRICE_CENTS, required=True)
    stock = strict_int(0, MAX_INITIAL_STOCK, required=True)


class ProductUpdateSchema(ma.Schema):
    name = text_field(MAX_NAME)
    price_cents = strict_int(1, MAX_PRICE_CENTS)

    @ma.validates_schema
    def _something_to_change(self, data, **kwargs):
        if not data:
            raise ma.ValidationError("Give at least one of: name, price_cents.", field_name="body")


class RestockSchema(ma.Schema):
    qty = strict_int(1, MAX_RESTOCK_QTY, required=True, metadata={"description": "Units received, 1..1000000"})


ProductPageSchema = page_schema(ProductSchema, "ProductPage")


# --- Carts ------------------------------------------------------------------------------------


class CustomerQuerySchema(ma.Schema):
    customer_id = id_field(
        load_default=None,
        metadata={"description": "Required for admins and services; customer users act for themselves"},
    )


class CartItemPutSchema(ma.Schema):
    qty = strict_int(1, MAX_QTY, required=True)


# --- Orders -----------------------------------------------------------------------------------


class OrderLineInSchema(ma.Schema):
    product_id = strict_int(1, BIGINT_MAX, required=True)
    qty = strict_int(1, MAX_QTY, required=True)


class OrderCreateSchema(ma.Schema):
    customer_id = strict_int(
        1,
        BIGINT_MAX,
        load_default=None,
        metadata={"description": "Required for admins and services; a customer user may only name its own"},
    )
    items = ma.fields.List(
        ma.fields.Nested(OrderLineInSchema),
        validate=validate.Length(min=1, max=MAX_ORDER_ITEMS),
        metadata={"description": "Each product at most once"},
    )
    from_cart = ma.fields.Boolean(
        truthy={True}, falsy={False}, metadata={"description": "Order the cart's contents and empty it"}
    )

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


OrderPageSchema = page_schema(OrderSchema, "OrderPage")


class OrderListQuerySchema(PageQuerySchema):
    status = ma.fields.String(load_default=None, validate=validate.OneOf(ORDER_STATUSES))
    customer_id = id_field(load_default=None)
    created_from = UtcDateTime(
        data_key="from", load_default=None, metadata={"description": "created_at >= from (ISO 8601)"}
    )
    created_to = UtcDateTime(data_key="to", load_default=None, metadata={"description": "created_at < to (ISO 8601)"})

    @ma.validates_schema
    def _from_before_to(self, data, **kwargs):
        start, end = data.get("created_from"), data.get("created_to")
        if start is not None and end is not None and start > end:
            raise ma.ValidationError("Must not be after `to`.", field_name="from")


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
        load_default=None,
        validate=validate.Range(min=0, max=MAX_AGE_SECONDS),
        metadata={"description": "PENDING orders confirmed this long ago; default PAYMENT_GRACE_SECONDS"},
    )
    processing_older_than_seconds = ma.fields.Integer(
        load_default=None,
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
