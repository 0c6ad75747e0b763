"""The public JSON shapes of the public API (docs/api.md) as marshmallow schemas, written once.

They document responses: each service's OpenAPI document and the BFF's (which relays the
services' bodies) describe the same resources with the same schemas. Bodies themselves are
built by the service layers as plain dicts. Flask-free, so the Lambdas can import it.
"""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma

from .limits import (
    BIGINT_MAX,
    CURSOR_MAX,
    EMAIL_LOCAL_PART_MAX,
    EMAIL_MAX,
    IDEMPOTENCY_KEY_MAX,
    INITIAL_STOCK_MAX,
    NAME_MAX,
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    PASSWORD_MAX,
    PHONE_MAX,
    PRICE_CENTS_MAX,
    QTY_MAX,
    RESTOCK_QTY_MAX,
    SKU_MAX,
    USERNAME_MAX,
)
from .timeutil import parse_iso_utc

ORDER_STATUSES = ("CREATED", "CONFIRMED", "PAID", "CANCELED")
PAYMENT_STATUSES = ("NOT_REQUESTED", "PENDING", "PROCESSING", "SUCCEEDED", "FAILED")
CANCEL_REASONS = ("requested", "payment_failed", "reservation_expired")


def timestamp(**kwargs) -> ma.fields.String:
    """ISO 8601 UTC with `Z`, as every timestamp of the platform."""
    return ma.fields.String(metadata={"format": "date-time", "example": "2026-11-23T15:53:00.123Z"}, **kwargs)


# --- Conventions -------------------------------------------------------------------------------


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details (docs/errors-and-limits.md).

    The six members every problem has, `errors` on validation problems, and the extension members
    some codes add. A problem may carry members not listed here (RFC 9457 allows them), so the
    document allows additional properties.
    """

    class Meta:
        unknown = ma.INCLUDE

    type = ma.fields.String(
        required=True, metadata={"description": "URI naming the problem type: `urn:b2b-platform:problem:<code>`"}
    )
    title = ma.fields.String(required=True, metadata={"description": "The status's reason phrase"})
    status = ma.fields.Integer(required=True, metadata={"description": "The HTTP status, repeated"})
    detail = ma.fields.String(required=True, metadata={"description": "What went wrong, for a person"})
    code = ma.fields.String(
        required=True, metadata={"description": "Stable machine-readable error code", "example": "not_found"}
    )
    request_id = ma.fields.String(
        required=True, metadata={"description": "The request's id (also the `X-Request-Id` response header)"}
    )
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={
            "description": "`validation_error`, `malformed_json`, `invalid_cursor`, `idempotency_key_required`: "
            "every field error at once, `{field: [messages]}`"
        },
    )
    # Extension members, by code.
    resource = ma.fields.String(
        metadata={"description": "`not_found`: which kind of resource (`customer`, `order`, `product`, `cart`...)"}
    )
    sku = ma.fields.String(metadata={"description": "`duplicate_sku`: the SKU already taken"})
    product_id = ma.fields.Integer(metadata={"description": "`insufficient_stock`: the product short of stock"})
    requested = ma.fields.Integer(metadata={"description": "`insufficient_stock`: the quantity asked for"})
    available = ma.fields.Integer(metadata={"description": "`insufficient_stock`: the stock there is"})
    current_status = ma.fields.String(
        metadata={
            "description": "`invalid_state_transition`, `cancel_window_expired`, `payment_in_progress`, "
            "`payment_attempt_mismatch`: the order's status",
            "enum": list(ORDER_STATUSES),
        }
    )
    dependency = ma.fields.String(metadata={"description": "`dependency_unavailable`: the service that is down"})
    step = ma.fields.String(metadata={"description": "`time_budget_exhausted`: the step that was not started"})


class QuerySchema(ma.Schema):
    """Query parameters. An optional parameter that is absent loads as None; it is not declared
    with `load_default=None`, which would document it as nullable (a query string has no null)."""

    @ma.post_load
    def _absent_as_none(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        for name, field in self.load_fields.items():
            if not field.required and field.load_default is ma.missing:
                data.setdefault(field.attribute or name, None)
        return data


class PageQuerySchema(QuerySchema):
    limit = ma.fields.Integer(
        load_default=PAGE_LIMIT_DEFAULT,
        validate=ma.validate.Range(min=1, max=PAGE_LIMIT_MAX),
        metadata={"description": f"Page size, 1..{PAGE_LIMIT_MAX}"},
    )
    cursor = ma.fields.String(
        validate=ma.validate.Length(min=1, max=CURSOR_MAX),
        metadata={
            "description": "Opaque: the `next_cursor` of the previous page (anything else is a 400 `invalid_cursor`)"
        },
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


# --- customers-service (docs/auth.md, docs/api.md) ----------------------------------------------------------


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


# --- orders-service (docs/api.md, docs/order-lifecycle.md) ---------------------------------------


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


# --- Requests ----------------------------------------------------------------------------------
# What the services validate, and what the BFF documents for the routes it relays to them: one
# definition each. Every rule is one the OpenAPI document can state (length, range, pattern,
# minProperties), so the document says exactly what is accepted.


class FullMatch(ma.validate.Regexp):
    """`Regexp`, matched against the whole value: `$` in Python also matches before a final newline."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


_CONTROL = "\x00-\x1f\x7f-\x9f"
_SPACE = " \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# No control characters, and something besides spaces (literal characters, so any regex engine
# reads the same classes).
VISIBLE_TEXT_PATTERN = f"^[^{_CONTROL}]*[^{_CONTROL}{_SPACE}][^{_CONTROL}]*$"
_ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP_LABEL = "[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+{_TOP_LABEL}$"
PHONE_PATTERN = r"^\+?[0-9][0-9 ().-]{2,31}$"
# Printable ASCII without leading or trailing spaces: it travels in a header.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~](?:[ -~]*[!-~])?$"


_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def is_valid_idempotency_key(key: str) -> bool:
    """1..255 printable ASCII characters without leading or trailing spaces, as documented."""
    return len(key) <= IDEMPOTENCY_KEY_MAX and _IDEMPOTENCY_KEY.fullmatch(key) is not None


def text_field(max_length: int, **kwargs: Any) -> ma.fields.String:
    """1..max_length characters, no control characters, not only spaces."""
    return ma.fields.String(
        validate=[
            ma.validate.Length(min=1, max=max_length),
            FullMatch(VISIBLE_TEXT_PATTERN, error="Must not be blank or contain control characters."),
        ],
        **kwargs,
    )


def strict_int(minimum: int, maximum: int, **kwargs: Any) -> ma.fields.Integer:
    """A JSON integer (no strings, floats or booleans) within [minimum, maximum]."""
    return ma.fields.Integer(strict=True, validate=ma.validate.Range(min=minimum, max=maximum), **kwargs)


def _local_part_fits(value: str) -> None:
    # RFC 5321 §4.5.3.1.1, which `format: email` implies and the pattern cannot count.
    if len(value.rpartition("@")[0]) > EMAIL_LOCAL_PART_MAX:
        raise ma.ValidationError(f"The part before @ must be at most {EMAIL_LOCAL_PART_MAX} characters.")


def email_field(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(
        validate=[
            ma.validate.Length(min=3, max=EMAIL_MAX),
            FullMatch(EMAIL_PATTERN, error="Not a valid email address."),
            _local_part_fits,
        ],
        metadata={"format": "email"},
        **kwargs,
    )


def phone_field(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(
        allow_none=True,
        validate=[ma.validate.Length(max=PHONE_MAX), FullMatch(PHONE_PATTERN, error="Not a valid phone number.")],
        **kwargs,
    )


def query_id_field(**kwargs: Any) -> ma.fields.Integer:
    return ma.fields.Integer(validate=ma.validate.Range(min=1, max=BIGINT_MAX), **kwargs)


def idempotency_key_field(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(
        validate=[
            ma.validate.Length(min=1, max=IDEMPOTENCY_KEY_MAX),
            FullMatch(IDEMPOTENCY_KEY_PATTERN, error="Must be printable ASCII without leading or trailing spaces."),
        ],
        **kwargs,
    )


class LoginRequestSchema(ma.Schema):
    username = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=USERNAME_MAX))
    password = ma.fields.String(required=True, load_only=True, validate=ma.validate.Length(min=1, max=PASSWORD_MAX))


class CustomerInSchema(ma.Schema):
    """POST and PUT: every field (an omitted phone is cleared by PUT)."""

    name = text_field(NAME_MAX, required=True)
    email = email_field(required=True)
    phone = phone_field()


class CustomerPatchSchema(ma.Schema):
    """At least one field."""

    OPENAPI_EXTRA = {"minProperties": 1}

    name = text_field(NAME_MAX)
    email = email_field()
    phone = phone_field()

    @ma.validates_schema
    def _at_least_one(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError("Give at least one of: name, email, phone.", field_name="body")


class CustomerSearchQuerySchema(PageQuerySchema):
    search = ma.fields.String(
        validate=ma.validate.Length(max=NAME_MAX), metadata={"description": "Part of the name or email"}
    )


class ProductCreateSchema(ma.Schema):
    sku = text_field(SKU_MAX, required=True)
    name = text_field(NAME_MAX, required=True)
    price_cents = strict_int(1, PRICE_CENTS_MAX, required=True)
    stock = strict_int(0, INITIAL_STOCK_MAX, required=True)


class ProductUpdateSchema(ma.Schema):
    """At least one field; existing orders keep their prices."""

    OPENAPI_EXTRA = {"minProperties": 1}

    name = text_field(NAME_MAX)
    price_cents = strict_int(1, PRICE_CENTS_MAX)

    @ma.validates_schema
    def _at_least_one(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError("Give at least one of: name, price_cents.", field_name="body")


class RestockSchema(ma.Schema):
    qty = strict_int(
        1, RESTOCK_QTY_MAX, required=True, metadata={"description": f"Units received, 1..{RESTOCK_QTY_MAX}"}
    )


class CustomerQuerySchema(QuerySchema):
    customer_id = query_id_field(
        metadata={"description": "Required for admins and services; customer users act for themselves"}
    )


class CartItemPutSchema(ma.Schema):
    qty = strict_int(1, QTY_MAX, required=True)


class OrderLineInSchema(ma.Schema):
    product_id = strict_int(1, BIGINT_MAX, required=True)
    qty = strict_int(1, QTY_MAX, required=True)


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class UtcDateTime(ma.fields.String):
    """An RFC 3339 `date-time` (with `Z` or an offset) or `date` (midnight UTC) → naive UTC.

    A string field documented as `anyOf` the two formats: exactly what is accepted (a time
    without an offset would be ambiguous, and is a 400)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"anyOf": [{"format": "date-time"}, {"format": "date"}], **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        error = "Not an RFC 3339 date-time with Z or an offset, or a date."
        text = super()._deserialize(value, attr, data, **kwargs)
        if _DATE.fullmatch(text):
            text += "T00:00:00Z"
        match = _DATE_TIME.fullmatch(text)
        if match is None:
            raise ma.ValidationError(error)
        day, hours_minutes, seconds, fraction, offset = match.groups()
        seconds = "59" if seconds == "60" else seconds  # a leap second, as RFC 3339 allows
        try:
            return parse_iso_utc(f"{day}T{hours_minutes}:{seconds}{(fraction or '')[:7]}{offset}")
        except (ValueError, OverflowError):
            raise ma.ValidationError(error) from None


class OrderListQuerySchema(PageQuerySchema):
    status = ma.fields.String(validate=ma.validate.OneOf(ORDER_STATUSES))
    customer_id = query_id_field(metadata={"description": "Admins and services: any; customer users: only their own"})
    created_from = UtcDateTime(data_key="from", metadata={"description": "created_at >= from (RFC 3339)"})
    created_to = UtcDateTime(
        data_key="to", metadata={"description": "created_at < to (RFC 3339); before `from`: an empty page"}
    )
