"""Input the BFF validates itself (the workflows it owns); proxied routes are validated downstream.

marshmallow, as in the services: the same messages, and `flatten_errors` lists every field at once
(`items.0.qty`). Unknown fields are refused so a typo is not silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma

from servicekit.limits import BIGINT_MAX, IDEMPOTENCY_KEY_MAX, ITEMS_PER_ORDER_MAX, NAME_MAX, QTY_MAX
from servicekit.problems import flatten_errors, validation_error
from servicekit.request_id import is_sane_id

MAX_ITEMS = ITEMS_PER_ORDER_MAX
MAX_QTY = QTY_MAX
MAX_IDEMPOTENCY_KEY = IDEMPOTENCY_KEY_MAX


def _sane_correlation_id(value: str) -> None:
    if not is_sane_id(value):
        raise ma.ValidationError("Must be 1-128 characters of A-Z a-z 0-9 . _ -")


def _id(**kwargs: Any) -> ma.fields.Integer:
    return ma.fields.Integer(strict=True, validate=ma.validate.Range(min=1, max=BIGINT_MAX), **kwargs)


class ItemSchema(ma.Schema):
    product_id = _id(required=True)
    qty = ma.fields.Integer(strict=True, required=True, validate=ma.validate.Range(min=1, max=MAX_QTY))


class _WorkflowSchema(ma.Schema):
    customer_id = _id(load_default=None)
    idempotency_key = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=MAX_IDEMPOTENCY_KEY))
    # It goes into SQS attributes and log lines: same alphabet and length as a request id.
    correlation_id = ma.fields.String(load_default=None, validate=lambda value: _sane_correlation_id(value))


class CreateAndConfirmOrderSchema(_WorkflowSchema):
    items = ma.fields.List(
        ma.fields.Nested(ItemSchema), required=True, validate=ma.validate.Length(min=1, max=MAX_ITEMS)
    )


class CheckoutSchema(_WorkflowSchema):
    pass


class CancelOrderSchema(ma.Schema):
    idempotency_key = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=MAX_IDEMPOTENCY_KEY))
    reason = ma.fields.String(load_default=None, validate=ma.validate.Length(max=NAME_MAX))


def load(schema: ma.Schema, data: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return schema.load(data)
    except ma.ValidationError as exc:
        raise validation_error(flatten_errors(exc.messages)) from None


def int_query(value: str | None, name: str) -> int | None:
    """An id from the query string (`?customer_id=`): absent is None, anything odd a 400."""
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= BIGINT_MAX:
        raise validation_error({name: ["Not a valid id."]})
    return int(value)
