"""The public JSON shapes of SPEC §2–§5 as marshmallow schemas, written once.

They document responses: each service's OpenAPI document and the BFF's (which relays the
services' bodies) describe the same resources with the same schemas. Bodies themselves are
built by the service layers as plain dicts. Flask-free, so the Lambdas can import it.
"""

from __future__ import annotations

import marshmallow as ma

from .pagination import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT

ORDER_STATUSES = ("CREATED", "CONFIRMED", "PAID", "CANCELED")
PAYMENT_STATUSES = ("NOT_REQUESTED", "PENDING", "PROCESSING", "SUCCEEDED", "FAILED")
CANCEL_REASONS = ("requested", "payment_failed", "reservation_expired")


def timestamp(**kwargs) -> ma.fields.String:
    """ISO 8601 UTC with `Z`, as every timestamp of the platform."""
    return ma.fields.String(metadata={"format": "date-time", "example": "2026-11-23T15:53:00.123Z"}, **kwargs)


# --- Conventions (SPEC §2) --------------------------------------------------------------------


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details."""

    type = ma.fields.String(metadata={"description": "URI identifying the problem type"})
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    code = ma.fields.String(metadata={"description": "Stable machine-readable error code", "example": "not_found"})
    request_id = ma.fields.String()
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={"description": "Field errors, all at once: {field: [messages]}"},
    )


class PageQuerySchema(ma.Schema):
    limit = ma.fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=ma.validate.Range(min=1, max=MAX_LIMIT),
        metadata={"description": f"Page size, 1..{MAX_LIMIT}"},
    )
    cursor = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(min=1, max=MAX_CURSOR_LENGTH),
        metadata={"description": "Opaque cursor: next_cursor of the previous page"},
    )


class PaginationSchema(ma.Schema):
    next_cursor = ma.fields.String(allow_none=True)
    limit = ma.fields.Integer()


def page_schema(item_schema: type[ma.Schema], name: str) -> type[ma.Schema]:
    """`{"data": [item], "pagination": {...}}`."""
    return ma.Schema.from_dict(
        {"data": ma.fields.List(ma.fields.Nested(item_schema)), "pagination": ma.fields.Nested(PaginationSchema)},
        name=name,
    )


class HealthSchema(ma.Schema):
    status = ma.fields.String()
    service = ma.fields.String()


# --- customers-service (SPEC §3, §4) ----------------------------------------------------------


class CustomerSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    email = ma.fields.String()
    phone = ma.fields.String(allow_none=True)
    created_at = timestamp()
    updated_at = timestamp()


class LoginUserSchema(ma.Schema):
    id = ma.fields.Integer()
    username = ma.fields.String()
    role = ma.fields.String(metadata={"enum": ["admin", "customer"]})
    customer_id = ma.fields.Integer(allow_none=True)


class LoginSchema(ma.Schema):
    access_token = ma.fields.String()
    token_type = ma.fields.String(metadata={"example": "Bearer"})
    expires_in = ma.fields.Integer(metadata={"description": "Seconds"})
    user = ma.fields.Nested(LoginUserSchema)


# --- orders-service (SPEC §5, §6) -------------------------------------------------------------


class ProductSchema(ma.Schema):
    id = ma.fields.Integer()
    sku = ma.fields.String()
    name = ma.fields.String()
    price_cents = ma.fields.Integer()
    stock = ma.fields.Integer()
    created_at = timestamp()
    updated_at = timestamp()


class CartLineSchema(ma.Schema):
    product_id = ma.fields.Integer()
    sku = ma.fields.String()
    name = ma.fields.String()
    qty = ma.fields.Integer()
    unit_price_cents = ma.fields.Integer(metadata={"description": "Current catalogue price"})
    subtotal_cents = ma.fields.Integer()


class CartSchema(ma.Schema):
    customer_id = ma.fields.Integer()
    items = ma.fields.List(ma.fields.Nested(CartLineSchema))
    total_cents = ma.fields.Integer()


class OrderItemSchema(ma.Schema):
    product_id = ma.fields.Integer()
    sku = ma.fields.String()
    qty = ma.fields.Integer()
    unit_price_cents = ma.fields.Integer(metadata={"description": "Price read under the reservation's lock"})
    subtotal_cents = ma.fields.Integer()


class OrderSchema(ma.Schema):
    id = ma.fields.Integer()
    customer_id = ma.fields.Integer()
    status = ma.fields.String(metadata={"enum": list(ORDER_STATUSES)})
    payment_status = ma.fields.String(metadata={"enum": list(PAYMENT_STATUSES)})
    total_cents = ma.fields.Integer()
    items = ma.fields.List(ma.fields.Nested(OrderItemSchema))
    created_at = timestamp()
    confirmed_at = timestamp(allow_none=True)
    paid_at = timestamp(allow_none=True)
    canceled_at = timestamp(allow_none=True)
    cancel_reason = ma.fields.String(allow_none=True, metadata={"enum": list(CANCEL_REASONS)})
    updated_at = timestamp()
