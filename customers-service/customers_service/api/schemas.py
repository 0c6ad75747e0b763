"""Request and response schemas (responses are documented; bodies are built by the services)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from servicekit.limits import EMAIL_MAX, NAME_MAX, PHONE_MAX
from servicekit.web import PageQuerySchema

PHONE_PATTERN = r"^\+?[0-9][0-9 ().\-]{2,31}$"


def not_blank(value: str) -> None:
    if not value.strip():
        raise ma.ValidationError("Must not be blank.")


def _name(required: bool) -> fields.String:
    return fields.String(required=required, validate=[validate.Length(min=1, max=NAME_MAX), not_blank])


def _email(required: bool) -> fields.Email:
    return fields.Email(required=required, validate=validate.Length(max=EMAIL_MAX))


def _phone() -> fields.String:
    return fields.String(
        allow_none=True,
        validate=[validate.Length(max=PHONE_MAX), validate.Regexp(PHONE_PATTERN, error="Not a valid phone number.")],
    )


class CustomerInSchema(ma.Schema):
    """POST and PUT: every field (an omitted phone is cleared by PUT)."""

    name = _name(True)
    email = _email(True)
    phone = _phone()


class CustomerPatchSchema(ma.Schema):
    name = _name(False)
    email = _email(False)
    phone = _phone()

    @ma.validates_schema
    def at_least_one_field(self, data, **_kwargs):
        if not data:
            raise ma.ValidationError("At least one of name, email, phone is required.")


class CustomerSearchQuerySchema(PageQuerySchema):
    search = fields.String(load_default=None, validate=validate.Length(max=NAME_MAX))


class UserInSchema(ma.Schema):
    username = fields.String(
        required=True,
        validate=[
            validate.Length(min=3, max=64),
            validate.Regexp(r"^[A-Za-z0-9._@-]+$", error="Letters, digits and . _ @ - only."),
        ],
    )
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=8, max=128))
    role = fields.String(required=True, validate=validate.OneOf(["admin", "customer"]))
    customer_id = fields.Integer(strict=True, allow_none=True, load_default=None, validate=validate.Range(min=1))


class UserSchema(ma.Schema):
    id = fields.Integer()
    username = fields.String()
    role = fields.String()
    customer_id = fields.Integer(allow_none=True)
    created_at = fields.String(metadata={"format": "date-time"})
    updated_at = fields.String(metadata={"format": "date-time"})


class LoginInSchema(ma.Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=128))


class InternalLoginInSchema(LoginInSchema):
    client_address = fields.IP(required=True, metadata={"description": "The client's IP address, as the BFF saw it"})
