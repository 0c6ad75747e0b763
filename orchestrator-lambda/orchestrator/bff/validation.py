"""Input the BFF validates itself (the workflows it owns); proxied routes are validated downstream.

marshmallow, as in the services, with their field definitions (`servicekit.contracts`): the same
messages and limits, and `flatten_errors` lists every field at once (`items.0.qty`). Unknown
fields are refused so a typo is not silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma

from servicekit.auth import Principal
from servicekit.contracts import FullMatch, OrderLineInSchema, idempotency_key_field, strict_int
from servicekit.limits import BIGINT_MAX, IDEMPOTENCY_KEY_MAX, ITEMS_PER_ORDER_MAX, NAME_MAX, QTY_MAX, REQUEST_ID_MAX
from servicekit.problems import flatten_errors, validation_error

MAX_ITEMS = ITEMS_PER_ORDER_MAX
MAX_QTY = QTY_MAX
MAX_IDEMPOTENCY_KEY = IDEMPOTENCY_KEY_MAX
# It goes into SQS attributes and log lines: the alphabet and length of a request id.
CORRELATION_ID_PATTERN = r"^[A-Za-z0-9._-]+$"

ItemSchema = OrderLineInSchema


class _WorkflowSchema(ma.Schema):
    customer_id = strict_int(
        1,
        BIGINT_MAX,
        load_default=None,
        allow_none=True,
        metadata={"description": "Required for admins; a customer user may leave it out or name its own customer"},
    )
    # Documented in prose only (openapi.py): the `Idempotency-Key` header is the documented way.
    idempotency_key = idempotency_key_field(load_default=None)
    correlation_id = ma.fields.String(
        load_default=None,
        validate=[
            ma.validate.Length(min=1, max=REQUEST_ID_MAX),
            FullMatch(CORRELATION_ID_PATTERN, error=f"Must be 1-{REQUEST_ID_MAX} characters of A-Z a-z 0-9 . _ -"),
        ],
        metadata={"description": "Carried with the payment event; default: one derived from the Idempotency-Key"},
    )


class CreateAndConfirmOrderSchema(_WorkflowSchema):
    items = ma.fields.List(
        ma.fields.Nested(ItemSchema),
        required=True,
        validate=ma.validate.Length(min=1, max=MAX_ITEMS),
        metadata={"description": "Each product at most once"},
    )

    @ma.validates_schema
    def _each_product_once(self, data: dict[str, Any], **_kwargs: Any) -> None:
        products = [line["product_id"] for line in data.get("items", ())]
        if len(products) != len(set(products)):
            raise ma.ValidationError("List each product once.", field_name="items")


class CheckoutSchema(_WorkflowSchema):
    pass


class CancelOrderSchema(ma.Schema):
    idempotency_key = idempotency_key_field(load_default=None)
    reason = ma.fields.String(load_default=None, validate=ma.validate.Length(max=NAME_MAX))


# One instance each, made at import: a schema's fields are copied for every instance made, and
# loading does not change the instance.
CREATE_AND_CONFIRM_ORDER = CreateAndConfirmOrderSchema()
CHECKOUT = CheckoutSchema()
CANCEL_ORDER = CancelOrderSchema()


def load(schema: ma.Schema, data: Mapping[str, Any], *, principal: Principal | None = None) -> dict[str, Any]:
    """Load `data`, or a 400 listing every invalid field; with a `principal`, an admin's missing
    `customer_id` is listed with the rest."""
    errors: dict[str, list[str]] = {}
    loaded: dict[str, Any] = {}
    try:
        loaded = schema.load(data)
    except ma.ValidationError as exc:
        errors = flatten_errors(exc.messages)
    if principal is not None and principal.is_admin and data.get("customer_id") is None and "customer_id" not in errors:
        errors["customer_id"] = ["customer_id is required for admin callers."]
    if errors:
        raise validation_error(errors)
    return loaded


def int_query(value: str | None, name: str) -> int | None:
    """An id from the query string (`?customer_id=`): absent is None, anything odd a 400."""
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= BIGINT_MAX:
        raise validation_error({name: ["Not a valid id."]})
    return int(value)
